//! Parity of the host's CLIP tokenizer with open_clip's own, run live: the
//! strings come from `tools/reference/tokenizer_cases.py`, the expected ids from
//! `tools/reference/clip_tokenize.py` (open_clip 3.3.0 in the project's virtualenv), and
//! every row must be identical. Nothing is stored, so a new open_clip or a new case
//! is checked on the next run.
//!
//! The one documented gap, ftfy's mojibake repair, has its own list of strings:
//! their differences are printed, not asserted.

use std::path::{Path, PathBuf};

use serde_json::Value;

use switchyard::clip::tokenizer::{ClipTokenizer, DEFAULT_CONTEXT_LENGTH};
use switchyard_tests::{python_output, venv_python};

/// open_clip's `bpe_simple_vocab_16e6.txt.gz` inside the venv (found without
/// importing open_clip, which takes seconds because it imports torch).
fn vocab_path() -> PathBuf {
    let lib = venv_python().parent().and_then(Path::parent).expect("python is in .venv/bin").join("lib");
    let found = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("cannot list `{}`: {e}; recreate the virtualenv with `ci/setup.sh`", lib.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/open_clip/bpe_simple_vocab_16e6.txt.gz"))
        .find(|path| path.exists());
    found.unwrap_or_else(|| {
        panic!("open_clip's vocabulary is not under `{}`; install open_clip with `ci/setup.sh`", lib.display())
    })
}

fn load_tokenizer(path: &Path) -> ClipTokenizer {
    ClipTokenizer::from_file(path).unwrap_or_else(|e| panic!("{e}"))
}

type Mismatch<'a> = (usize, &'a str, Vec<i64>, Vec<i64>);

/// Texts whose row differs between open_clip (`expected`) and this tokenizer.
fn compare<'a>(tokenizer: &ClipTokenizer, texts: &'a [String], expected: &[Vec<i64>]) -> Vec<Mismatch<'a>> {
    assert_eq!(expected.len(), texts.len(), "open_clip returned one row per text");
    let batch = tokenizer.tokenize_batch(texts, DEFAULT_CONTEXT_LENGTH);
    let mut mismatches = Vec::new();
    for (i, ((text, want), got)) in texts.iter().zip(expected).zip(batch.chunks(DEFAULT_CONTEXT_LENGTH)).enumerate() {
        // The one-text path must agree with the batch path.
        assert_eq!(
            tokenizer.tokenize(text, DEFAULT_CONTEXT_LENGTH),
            got,
            "case {i}: tokenize and tokenize_batch differ"
        );
        if want.as_slice() != got {
            mismatches.push((i, text.as_str(), want.clone(), got.to_vec()));
        }
    }
    mismatches
}

fn describe(mismatches: &[Mismatch<'_>], limit: usize) -> String {
    let mut report = String::new();
    for (i, text, want, got) in mismatches.iter().take(limit) {
        let first = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(0);
        report += &format!(
            "\ncase {i}: {text:?}\n  first difference at position {first}\n  open_clip:  {want:?}\n  switchyard: {got:?}\n"
        );
    }
    report
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    serde_json::from_value(value[key].clone()).unwrap_or_else(|e| panic!("`{key}` is not a list of strings: {e}"))
}

#[test]
fn tokenizer_matches_open_clip_on_every_case() {
    let generated: Value = serde_json::from_slice(&python_output(&["tools/reference/tokenizer_cases.py"], b""))
        .expect("tokenizer_cases.py prints JSON");
    let cases = strings(&generated, "cases");
    let mojibake = strings(&generated, "mojibake");
    assert!(cases.len() >= 1000, "expected at least 1000 cases, got {}", cases.len());
    let tokenizer = load_tokenizer(&vocab_path());

    // One run of open_clip (importing torch takes seconds) for both lists.
    let all: Vec<&String> = cases.iter().chain(&mojibake).collect();
    let input = serde_json::to_vec(&all).expect("strings serialize");
    let mut expected: Vec<Vec<i64>> =
        serde_json::from_slice(&python_output(&["tools/reference/clip_tokenize.py"], &input))
            .expect("open_clip's rows are a JSON list of lists");
    assert_eq!(expected.len(), all.len(), "open_clip returned one row per text");
    let expected_mojibake = expected.split_off(cases.len());

    let gaps = compare(&tokenizer, &mojibake, &expected_mojibake);
    eprintln!(
        "clip tokenizer, documented gap (ftfy mojibake repair, not asserted): {} of {} strings differ{}",
        gaps.len(),
        mojibake.len(),
        describe(&gaps, 3)
    );

    let mismatches = compare(&tokenizer, &cases, &expected);
    eprintln!("clip tokenizer parity: {}/{} cases identical to open_clip", cases.len() - mismatches.len(), cases.len());
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from open_clip (first {} shown):{}",
        mismatches.len(),
        cases.len(),
        mismatches.len().min(10),
        describe(&mismatches, 10)
    );
}

#[test]
fn known_rows_and_truncation() {
    let tokenizer = load_tokenizer(&vocab_path());
    assert_eq!(tokenizer.vocab_size(), 49408);
    assert_eq!((tokenizer.sot_token_id(), tokenizer.eot_token_id()), (49406, 49407));
    assert_eq!(tokenizer.encode("a photo of a cat"), [320, 1125, 539, 320, 2368]);
    let row = tokenizer.tokenize(&"word ".repeat(200), DEFAULT_CONTEXT_LENGTH);
    assert_eq!(row.len(), DEFAULT_CONTEXT_LENGTH);
    assert_eq!((row[0], row[76]), (49406, 49407));
    assert!(row[1..76].iter().all(|&id| id != 0 && id != 49407));
}
