//! CLIP's byte-level BPE tokenizer, equal to open_clip's `SimpleTokenizer` as
//! `open_clip.get_tokenizer("ViT-B-32")` builds it (open_clip 3.3.0): the `lower`
//! clean function ([`super::text_clean::clean_lower`]), the pre-tokenizer regex
//! `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//! (case-insensitive), byte-to-unicode mapping, the first 48,894 merges of
//! `bpe_simple_vocab_16e6.txt.gz`, and rows of `context_length` ids framed by
//! `<start_of_text>` (49406) and `<end_of_text>` (49407), zero-padded. Text longer
//! than a row keeps its first `context_length` tokens with the last one forced to
//! `<end_of_text>`, as open_clip does.
//!
//! It lives in the host so that every plugin receives the same ids; the parity
//! test (`tests/tests/clip_tokenizer.rs`) runs open_clip itself on over a thousand
//! strings and compares. Like open_clip, it caches the BPE result of each word;
//! symbols are vocabulary ids rather than strings, so a merge is one hash lookup
//! on a pair of integers. The cache is bounded (cleared when it grows past
//! [`CACHE_CAPACITY`] words) because a server sees unbounded vocabularies.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use regex::Regex;

use super::text_clean::{clean_lower, is_python_space};

/// The context length of every CLIP model open_clip ships (`DEFAULT_CONTEXT_LENGTH`).
pub const DEFAULT_CONTEXT_LENGTH: usize = 77;

/// How many merges open_clip reads from the vocabulary file (`49152 - 256 - 2`).
pub const MERGE_COUNT: usize = 49152 - 256 - 2;

/// Words whose BPE result is kept before the cache is cleared.
pub const CACHE_CAPACITY: usize = 100_000;

const START_OF_TEXT: &str = "<start_of_text>";
const END_OF_TEXT: &str = "<end_of_text>";

/// Why a vocabulary file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read or decompressed.
    #[error(
        "cannot read the CLIP vocabulary `{}`: {source}; point to open_clip's \
         `bpe_simple_vocab_16e6.txt.gz` (it ships inside the open_clip Python package)",
        path.display()
    )]
    Read {
        /// The vocabulary file.
        path: PathBuf,
        /// The underlying I/O or gzip error.
        #[source]
        source: std::io::Error,
    },
    /// The (decompressed) file is not UTF-8 text.
    #[error("the CLIP vocabulary `{}` is not UTF-8 text; it must be open_clip's `bpe_simple_vocab_16e6.txt.gz`", path.display())]
    NotUtf8 {
        /// The vocabulary file.
        path: PathBuf,
    },
    /// A line of the merge list is not two symbols separated by a space.
    #[error(
        "line {line} of the CLIP vocabulary `{}` is not a BPE merge (two symbols separated by a space): {text:?}; \
         the file is damaged, copy `bpe_simple_vocab_16e6.txt.gz` from the open_clip package again",
        path.display()
    )]
    MalformedMerge {
        /// The vocabulary file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line as read.
        text: String,
    },
    /// The file holds fewer merges than CLIP's vocabulary needs.
    #[error(
        "the CLIP vocabulary `{}` holds {found} merges but CLIP needs {expected}; \
         use open_clip's `bpe_simple_vocab_16e6.txt.gz`, not a truncated or different BPE file",
        path.display()
    )]
    TooFewMerges {
        /// The vocabulary file.
        path: PathBuf,
        /// Merges found after the header line.
        found: usize,
        /// [`MERGE_COUNT`].
        expected: usize,
    },
}

/// open_clip's CLIP tokenizer. Cheap to share: `&self` methods, thread-safe cache.
#[derive(Debug)]
pub struct ClipTokenizer {
    /// Vocabulary id of each byte's symbol inside a word.
    byte_ids: [u32; 256],
    /// Vocabulary id of each byte's symbol at the end of a word (`</w>` appended).
    byte_end_ids: [u32; 256],
    /// (left id, right id) -> (merge rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    sot: u32,
    eot: u32,
    vocab_size: usize,
    pattern: Regex,
    cache: Mutex<HashMap<Box<str>, Box<[u32]>>>,
}

impl ClipTokenizer {
    /// Loads `bpe_simple_vocab_16e6.txt.gz` (gzip or already decompressed).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let read_err = |source| TokenizerError::Read { path: path.to_path_buf(), source };
        let raw = std::fs::read(path).map_err(read_err)?;
        let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::with_capacity(raw.len() * 3);
            flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(read_err)?;
            out
        } else {
            raw
        };
        let text = String::from_utf8(bytes).map_err(|_| TokenizerError::NotUtf8 { path: path.to_path_buf() })?;
        // open_clip: `split('\n')[1:49152-256-2+1]`, each line `tuple(line.split())`.
        let mut merges = Vec::with_capacity(MERGE_COUNT);
        for (index, line) in text.split('\n').enumerate().skip(1).take(MERGE_COUNT) {
            let mut parts = line.split(is_python_space).filter(|p| !p.is_empty());
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => merges.push((a, b)),
                _ => {
                    return Err(TokenizerError::MalformedMerge {
                        path: path.to_path_buf(),
                        line: index + 1,
                        text: line.to_string(),
                    })
                }
            }
        }
        if merges.len() < MERGE_COUNT {
            return Err(TokenizerError::TooFewMerges {
                path: path.to_path_buf(),
                found: merges.len(),
                expected: MERGE_COUNT,
            });
        }
        Ok(Self::from_merges(&merges))
    }

    /// Builds the vocabulary as open_clip does: 256 byte symbols, the same with
    /// `</w>`, one symbol per merge, then the two special tokens. Where a string
    /// repeats, the later id wins, as in open_clip's dict.
    fn from_merges(merges: &[(&str, &str)]) -> Self {
        let byte_chars = bytes_to_unicode();
        let mut encoder: HashMap<String, u32> = HashMap::with_capacity(512 + merges.len() + 2);
        let mut next_id = 0u32;
        let mut add = |encoder: &mut HashMap<String, u32>, s: String| {
            encoder.insert(s, next_id);
            next_id += 1;
        };
        for &(_, c) in &byte_chars {
            add(&mut encoder, c.to_string());
        }
        for &(_, c) in &byte_chars {
            add(&mut encoder, format!("{c}</w>"));
        }
        for (a, b) in merges {
            add(&mut encoder, format!("{a}{b}"));
        }
        add(&mut encoder, START_OF_TEXT.to_string());
        add(&mut encoder, END_OF_TEXT.to_string());
        let vocab_size = next_id as usize;

        let mut byte_ids = [0; 256];
        let mut byte_end_ids = [0; 256];
        for &(byte, c) in &byte_chars {
            byte_ids[byte as usize] = encoder[&c.to_string()];
            byte_end_ids[byte as usize] = encoder[&format!("{c}</w>")];
        }
        let mut merge_ids = HashMap::with_capacity(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            if let (Some(&left), Some(&right), Some(&merged)) =
                (encoder.get(*a), encoder.get(*b), encoder.get(&format!("{a}{b}")))
            {
                merge_ids.insert((left, right), (rank as u32, merged));
            }
        }
        let pattern = Regex::new(
            r"(?i:<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|(?i:[^\s\p{L}\p{N}])+",
        )
        .expect("the CLIP pre-tokenizer pattern is valid");
        Self {
            byte_ids,
            byte_end_ids,
            merges: merge_ids,
            sot: encoder[START_OF_TEXT],
            eot: encoder[END_OF_TEXT],
            vocab_size,
            pattern,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The id of `<start_of_text>` (49406 for CLIP).
    pub fn sot_token_id(&self) -> u32 {
        self.sot
    }

    /// The id of `<end_of_text>` (49407 for CLIP).
    pub fn eot_token_id(&self) -> u32 {
        self.eot
    }

    /// Number of ids (49408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// open_clip's `SimpleTokenizer.encode`: cleaned, lower-cased BPE ids, without
    /// the start and end tokens and without truncation.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = clean_lower(text);
        let mut ids = Vec::with_capacity(cleaned.len() / 3 + 4);
        for token in self.pattern.find_iter(&cleaned) {
            self.push_word(token.as_str(), &mut ids);
        }
        ids
    }

    /// open_clip's `tokenizer(text)` row: `<start_of_text>`, the ids, `<end_of_text>`,
    /// zero padding to `context_length`; too-long text keeps its first
    /// `context_length` ids with the last forced to `<end_of_text>`. A
    /// `context_length` of 0 gives an empty row (open_clip refuses it).
    pub fn tokenize(&self, text: &str, context_length: usize) -> Vec<i64> {
        let mut row = vec![0; context_length];
        self.tokenize_into(text, &mut row);
        row
    }

    /// [`Self::tokenize`] for many texts: one row-major `[texts.len(), context_length]`
    /// buffer, ready to be sent as an int64 tensor.
    pub fn tokenize_batch<S: AsRef<str>>(&self, texts: &[S], context_length: usize) -> Vec<i64> {
        let mut out = vec![0; texts.len() * context_length];
        if context_length > 0 {
            for (text, row) in texts.iter().zip(out.chunks_exact_mut(context_length)) {
                self.tokenize_into(text.as_ref(), row);
            }
        }
        out
    }

    /// Writes one row into `row` (whose length is the context length), which must
    /// hold zeros for the padding.
    fn tokenize_into(&self, text: &str, row: &mut [i64]) {
        let Some(last) = row.len().checked_sub(1) else { return };
        let ids = self.encode(text);
        row[0] = i64::from(self.sot);
        let body = ids.len().min(last);
        for (slot, &id) in row[1..=body].iter_mut().zip(&ids) {
            *slot = i64::from(id);
        }
        // The end token follows the ids, or replaces the last slot when they overflow.
        row[(1 + ids.len()).min(last)] = i64::from(self.eot);
    }

    /// Appends the ids of one pre-tokenized word.
    fn push_word(&self, word: &str, ids: &mut Vec<u32>) {
        match word {
            START_OF_TEXT => return ids.push(self.sot),
            END_OF_TEXT => return ids.push(self.eot),
            _ => {}
        }
        if let [byte] = word.as_bytes() {
            return ids.push(self.byte_end_ids[*byte as usize]);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.get(word) {
            return ids.extend_from_slice(cached);
        }
        drop(cache);
        let merged = self.bpe(word.as_bytes());
        ids.extend_from_slice(&merged);
        cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(word.into(), merged.into_boxed_slice());
    }

    /// open_clip's `bpe`: repeatedly merge every occurrence of the lowest-ranked
    /// adjacent pair until no pair is a known merge.
    fn bpe(&self, bytes: &[u8]) -> Vec<u32> {
        let Some((&last, init)) = bytes.split_last() else { return Vec::new() };
        let mut word: Vec<u32> = init.iter().map(|&b| self.byte_ids[b as usize]).collect();
        word.push(self.byte_end_ids[last as usize]);
        let mut next = Vec::with_capacity(word.len());
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|pair| self.merges.get(&(pair[0], pair[1])).map(|&(rank, merged)| (rank, pair, merged)))
                .min_by_key(|&(rank, _, _)| rank);
            let Some((_, &[first, second], merged)) = best else { break };
            next.clear();
            let mut i = 0;
            while i < word.len() {
                if word[i] == first && word.get(i + 1) == Some(&second) {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            std::mem::swap(&mut word, &mut next);
        }
        word
    }
}

/// GPT-2's reversible byte -> printable character table, in open_clip's order:
/// printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    let mut table: Vec<(u8, char)> = (0..=255u8).filter(|&b| printable(b)).map(|b| (b, char::from(b))).collect();
    for (n, b) in (0..=255u8).filter(|&b| !printable(b)).enumerate() {
        table.push((b, char::from_u32(256 + n as u32).expect("U+0100..U+0143 are characters")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary: "hello" merges to one symbol, "low" only partly.
    fn tiny() -> ClipTokenizer {
        ClipTokenizer::from_merges(&[
            ("l", "l"),
            ("h", "e"),
            ("o", "</w>"),
            ("he", "ll"),
            ("hell", "o</w>"),
            ("l", "o"),
        ])
    }

    #[test]
    fn vocabulary_layout_matches_open_clip() {
        let t = tiny();
        assert_eq!(t.vocab_size(), 512 + 6 + 2);
        assert_eq!((t.sot_token_id(), t.eot_token_id()), (518, 519));
        // bytes_to_unicode puts '!' first and 'a' at 64.
        assert_eq!(t.byte_ids[b'!' as usize], 0);
        assert_eq!(t.byte_ids[b'a' as usize], 64);
        assert_eq!(t.byte_end_ids[b'a' as usize], 256 + 64);
    }

    #[test]
    fn bpe_merges_by_rank() {
        let t = tiny();
        // hello -> he ll o</w> -> hell o</w> -> hello</w> (id 512 + rank 4).
        assert_eq!(t.bpe(b"hello"), vec![516]);
        // low -> l o w</w>: "lo" merges (rank 5), "w</w>" stays.
        assert_eq!(t.bpe(b"low"), vec![517, t.byte_end_ids[b'w' as usize]]);
        // Repeated pairs merge left to right without overlap: "lll" -> ll l</w>.
        assert_eq!(t.bpe(b"lll"), vec![512, t.byte_end_ids[b'l' as usize]]);
    }

    #[test]
    fn rows_are_framed_padded_and_truncated() {
        let t = tiny();
        assert_eq!(t.tokenize("Hello", 4), vec![518, 516, 519, 0]);
        assert_eq!(t.tokenize("hello hello hello", 3), vec![518, 516, 519]);
        assert_eq!(t.tokenize("", 3), vec![518, 519, 0]);
        assert_eq!(t.tokenize("hello", 1), vec![519]);
        assert!(t.tokenize("hello", 0).is_empty());
        assert_eq!(t.tokenize_batch(&["hello", ""], 3), vec![518, 516, 519, 518, 519, 0]);
        // Special tokens written in the text map to their ids, as in open_clip.
        assert_eq!(t.encode("hello<END_OF_TEXT>"), vec![516, 519]);
    }

    #[test]
    fn pre_tokenizer_splits_like_open_clip() {
        let t = tiny();
        let words: Vec<&str> = t.pattern.find_iter("it's 42 a\u{345}b ok!! 日本").map(|m| m.as_str()).collect();
        // U+0345 matches no alternative under IGNORECASE in Python's `regex`, so it is dropped.
        assert_eq!(words, ["it", "'s", "4", "2", "a", "b", "ok", "!!", "日本"]);
    }

    #[test]
    fn missing_file_says_what_to_use() {
        let err = ClipTokenizer::from_file("/nonexistent/bpe.txt.gz").unwrap_err();
        assert!(matches!(err, TokenizerError::Read { .. }));
        assert!(err.to_string().contains("bpe_simple_vocab_16e6.txt.gz"), "{err}");
    }
}
