//! The `tokenizer` fuzz target: the CLIP tokenizer (ftfy-style cleaning, lower-casing, the
//! pre-tokenizer regex, byte-level BPE, framing and truncation to 77 ids) on
//! arbitrary UTF-8, as `/v1/embed/text` and `/v1/embeddings` feed it.
//!
//! The vocabulary is `bpe_simple_vocab_16e6.txt.gz`: `$SWITCHYARD_BPE_VOCAB`,
//! else `models/clip/ViT-B-32/` of the checkout (ci/fuzz.sh finds it).
//!
//! Invariants: a row has exactly 77 ids, starts with `<start_of_text>`, holds
//! the text's ids in order, then `<end_of_text>` right after them (or in the
//! last slot when they overflow), then zeros; every id is in the vocabulary;
//! the word cache does not change results (encoding twice is identical); a
//! batch row equals the single row; cleaning is total (any text cleans).

use std::sync::OnceLock;

use switchyard::clip::text_clean::clean_lower;
use switchyard::clip::tokenizer::{ClipTokenizer, DEFAULT_CONTEXT_LENGTH};

fn tokenizer() -> &'static ClipTokenizer {
    static TOKENIZER: OnceLock<ClipTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = std::env::var("SWITCHYARD_BPE_VOCAB").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../models/clip/ViT-B-32/bpe_simple_vocab_16e6.txt.gz").into()
        });
        ClipTokenizer::from_file(&path).unwrap_or_else(|e| panic!("cannot load the BPE vocabulary {path}: {e}"))
    })
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tok = tokenizer();
    let (sot, eot) = (i64::from(tok.sot_token_id()), i64::from(tok.eot_token_id()));
    let vocab = tok.vocab_size() as u32;

    let _ = clean_lower(text);
    let ids = tok.encode(text);
    assert!(ids.iter().all(|&id| id < vocab), "an id outside the vocabulary of {vocab}");
    assert_eq!(tok.encode(text), ids, "the second encoding (word cache) differs");

    let n = DEFAULT_CONTEXT_LENGTH;
    let row = tok.tokenize(text, n);
    assert_eq!(row.len(), n, "row length");
    assert_eq!(row[0], sot, "row does not start with <start_of_text>");
    let end = (1 + ids.len()).min(n - 1);
    for (i, &id) in ids.iter().take(end - 1).enumerate() {
        assert_eq!(row[1 + i], i64::from(id), "id {i} of the row");
    }
    assert_eq!(row[end], eot, "no <end_of_text> at {end} ({} ids)", ids.len());
    assert!(row[end + 1..].iter().all(|&v| v == 0), "non-zero padding after the end");

    let batch = tok.tokenize_batch(&[text, "a photo of a cat"], n);
    assert_eq!(&batch[..n], &row[..], "a batch row differs from the single row");
    assert_eq!(&batch[n..], &tok.tokenize("a photo of a cat", n)[..], "the second batch row changed");
}
