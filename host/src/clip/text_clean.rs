//! Text cleanup in front of the CLIP tokenizer, equal to open_clip's `_clean_lower`
//! (the `clean` that `open_clip.get_tokenizer("ViT-B-32")` uses in open_clip 3.3.0):
//!
//! ```text
//! whitespace_clean(basic_clean(text)).lower()
//! basic_clean(text)      = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
//! whitespace_clean(text) = " ".join(text.split())
//! ```
//!
//! No Rust crate reproduces ftfy, so [`fix_text`] re-implements the parts of
//! `ftfy.fix_text` (ftfy 6.3.1, default `TextFixerConfig`) that change real text,
//! in ftfy's order, repeated until nothing changes as ftfy does:
//!
//! - text is processed line by line (each segment ends after a `\n`); HTML entity
//!   unescaping (`unescape_html="auto"`) is turned off for the rest of the text as
//!   soon as a line contains `<`, as ftfy does;
//! - `unescape_html`: `&name;` entities with a semicolon (HTML5 names, plus the
//!   all-caps spellings ftfy accepts such as `&EACUTE;`) and numeric `&#...;`
//!   references;
//! - `fix_c1_controls` (U+0080..U+009F read as Windows-1252), `fix_latin_ligatures`
//!   (ﬁ -> fi, Ĳ -> IJ, ...), `fix_character_width` (full-width and half-width forms
//!   -> NFKC, U+3000 -> space), `uncurl_quotes`, `fix_line_breaks` (CRLF, CR, U+2028,
//!   U+2029, U+0085 -> LF), `remove_terminal_escapes` (ANSI `ESC[...m`),
//!   `remove_control_chars`, and NFC normalization.
//!
//! Python's `html.unescape` ([`html_unescape`]) is replicated exactly, including
//! legacy entities without a semicolon (`&amp`, `&eacute`), longest-prefix
//! matching (`&notit;` -> `¬it;`) and its table of invalid numeric references.
//! `strip`, `split` and `lower` use Python's definitions of whitespace and full
//! Unicode lower-casing (final sigma included).
//!
//! Not replicated (documented gaps):
//!
//! - ftfy's `fix_encoding`: mojibake repair (`Ã©` -> `é`) together with its helpers
//!   `restore_byte_a0`, `replace_lossy_sequences` and `decode_inconsistent_utf8`.
//!   ftfy applies it only to text its "badness" heuristic flags as mis-decoded;
//!   such text is tokenized here as it was received.
//! - `fix_surrogates`: a Rust `&str` cannot hold UTF-16 surrogates, so there is
//!   nothing to fix.
//! - Unicode versions: Python 3.11 uses Unicode 14 for NFC and lower-casing, this
//!   crate's tables are newer; characters assigned after Unicode 14 may differ.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// open_clip's `_clean_lower`: ftfy-style fixes, HTML unescaping twice, whitespace
/// collapsed to single spaces and trimmed, then lower-cased.
pub fn clean_lower(text: &str) -> String {
    let fixed = fix_text(text);
    let once = html_unescape(&fixed);
    let twice = html_unescape(&once);
    let mut out = String::with_capacity(twice.len());
    for word in twice.split(is_python_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_ascii() {
        out.make_ascii_lowercase();
        out
    } else {
        out.to_lowercase()
    }
}

/// Python's `str.isspace`, which `str.split()` and `str.strip()` use. Wider than
/// [`char::is_whitespace`]: it includes U+001C..U+001F.
pub fn is_python_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// The subset of `ftfy.fix_text` described in the module documentation.
pub fn fix_text(text: &str) -> Cow<'_, str> {
    if !needs_fixing(text) {
        return Cow::Borrowed(text);
    }
    const MAX_DECODE_LENGTH: usize = 1_000_000;
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        if end > MAX_DECODE_LENGTH {
            // ftfy cuts segments at max_decode_length code points.
            if let Some((i, _)) = rest[..end].char_indices().nth(MAX_DECODE_LENGTH) {
                end = i;
            }
        }
        let segment = &rest[..end];
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
        rest = &rest[end..];
    }
    Cow::Owned(out)
}

/// Cheap test for text that no fixer can change: ASCII without `&`, CR, ESC or
/// other control characters (TAB, LF and FF are left alone by ftfy).
fn needs_fixing(text: &str) -> bool {
    !text.bytes().all(|b| ((b' '..0x7f).contains(&b) && b != b'&') || matches!(b, b'\t' | b'\n' | 0x0c))
}

/// ftfy's `fix_and_explain` loop: apply every fixer until the text stops changing.
fn fix_segment(segment: &str, unescape: bool) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(segment);
    loop {
        let mut next = text.clone();
        if unescape {
            replace_cow(&mut next, ftfy_unescape_html);
        }
        replace_cow(&mut next, |s| map_chars(s, c1_control));
        replace_cow(&mut next, |s| map_chars(s, latin_ligature));
        replace_cow(&mut next, |s| map_chars(s, character_width));
        replace_cow(&mut next, |s| map_chars(s, curly_quote));
        replace_cow(&mut next, fix_line_breaks);
        replace_cow(&mut next, |s| TERMINAL_ESCAPE.replace_all(s, ""));
        replace_cow(&mut next, remove_control_chars);
        replace_cow(&mut next, nfc);
        if next == text {
            return text;
        }
        text = next;
    }
}

/// Applies `f` to `text`, keeping the borrowed value when `f` changes nothing.
fn replace_cow<'a>(text: &mut Cow<'a, str>, f: impl for<'b> Fn(&'b str) -> Cow<'b, str>) {
    if let Cow::Owned(s) = f(text) {
        *text = Cow::Owned(s);
    }
}

/// Replaces each character for which `f` gives a replacement; borrows when none does.
fn map_chars(text: &str, f: impl Fn(char) -> Option<Cow<'static, str>>) -> Cow<'_, str> {
    let Some((first, _)) = text.char_indices().find(|&(_, c)| f(c).is_some()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match f(c) {
            Some(r) => out.push_str(&r),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Windows-1252's reading of bytes 0x80..0x9F (Python's `html` module uses the same
/// table for `&#128;`..`&#159;`); the five bytes 1252 leaves undefined map to themselves.
const WINDOWS_1252_C1: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2c6}', '\u{2030}',
    '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}',
    '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}',
    '\u{17e}', '\u{178}',
];

fn c1_control(c: char) -> Option<Cow<'static, str>> {
    let r = *WINDOWS_1252_C1.get((c as usize).checked_sub(0x80)?)?;
    (r != c).then(|| Cow::Owned(r.to_string()))
}

fn latin_ligature(c: char) -> Option<Cow<'static, str>> {
    let r = match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "\u{2bc}n",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "D\u{17d}",
        'ǅ' => "D\u{17e}",
        'ǆ' => "d\u{17e}",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "\u{17f}t",
        'ﬆ' => "st",
        _ => return None,
    };
    Some(Cow::Borrowed(r))
}

/// ftfy's `WIDTH_MAP`: U+3000 -> space, and U+FF01..U+FFEF -> their NFKC form.
fn character_width(c: char) -> Option<Cow<'static, str>> {
    match c {
        '\u{3000}' => Some(Cow::Borrowed(" ")),
        '\u{ff01}'..='\u{ffef}' => {
            let r: String = std::iter::once(c).nfkc().collect();
            let mut chars = r.chars();
            (chars.next() != Some(c) || chars.next().is_some()).then_some(Cow::Owned(r))
        }
        _ => None,
    }
}

fn curly_quote(c: char) -> Option<Cow<'static, str>> {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => Some(Cow::Borrowed("'")),
        '\u{201c}'..='\u{201f}' => Some(Cow::Borrowed("\"")),
        _ => None,
    }
}

fn fix_line_breaks(text: &str) -> Cow<'_, str> {
    if !text.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// ANSI terminal escapes; `\d` is Unicode-aware, as in Python's `re`.
static TERMINAL_ESCAPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("the terminal escape pattern is valid"));

fn is_control_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}'
        | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

fn remove_control_chars(text: &str) -> Cow<'_, str> {
    if text.contains(is_control_char) {
        Cow::Owned(text.chars().filter(|&c| !is_control_char(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        return Cow::Borrowed(text);
    }
    let normalized: String = text.nfc().collect();
    if normalized == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(normalized)
    }
}

/// Python's `html.entities.html5`, keyed without the leading `&`: names with a
/// semicolon and the legacy names that may go without one.
static HTML5: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| entities::ENTITIES.iter().map(|e| (&e.entity[1..], e.characters)).collect());

/// The all-caps entities ftfy adds (`&EACUTE;` -> `É`): for each lower-case HTML5
/// name with a semicolon whose upper-case spelling `html.unescape` leaves alone.
static FTFY_UPPER_ENTITIES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for e in entities::ENTITIES.iter() {
        let name = &e.entity[1..];
        if !name.ends_with(';') || name != name.to_lowercase() {
            continue;
        }
        let upper = format!("&{}", name.to_uppercase());
        if html_unescape(&upper) == upper.as_str() {
            map.insert(upper[1..].to_string(), e.characters.to_uppercase());
        }
    }
    map
});

static FTFY_ENTITY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("the ftfy entity pattern is valid"));

/// ftfy's `unescape_html`: only entities that end in a semicolon.
fn ftfy_unescape_html(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    FTFY_ENTITY.replace_all(text, |caps: &Captures| {
        let whole = &caps[0];
        let name = &whole[1..];
        if let Some(v) = HTML5.get(name) {
            return (*v).to_string();
        }
        if let Some(v) = FTFY_UPPER_ENTITIES.get(name) {
            return v.clone();
        }
        if whole.starts_with("&#") {
            let unescaped = html_unescape(whole);
            if !unescaped.contains(';') {
                return unescaped.into_owned();
            }
        }
        whole.to_string()
    })
}

static CHARREF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0c <&#;]{1,32};?)").expect("the charref pattern is valid")
});

/// Python's `html.unescape`, exactly.
pub fn html_unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    CHARREF.replace_all(text, |caps: &Captures| {
        let s = &caps[1];
        if let Some(num) = s.strip_prefix('#') {
            let (digits, radix) = match num.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (num, 10),
            };
            return numeric_charref(digits.trim_end_matches(';'), radix);
        }
        if let Some(v) = HTML5.get(s) {
            return (*v).to_string();
        }
        // The longest prefix (of at least two characters) that is an entity.
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
        for &end in bounds.iter().rev() {
            if let Some(v) = HTML5.get(&s[..end]) {
                return format!("{v}{}", &s[end..]);
            }
        }
        format!("&{s}")
    })
}

fn numeric_charref(digits: &str, radix: u32) -> String {
    // Saturate: anything above U+10FFFF is replaced the same way.
    let num = digits.chars().fold(0u32, |n, d| {
        n.saturating_mul(radix).saturating_add(d.to_digit(radix).expect("the pattern only matches digits"))
    });
    match num {
        0 => "\u{fffd}".into(),
        0x0d => "\r".into(),
        0x80..=0x9f => WINDOWS_1252_C1[(num - 0x80) as usize].to_string(),
        0xd800..=0xdfff | 0x11_0000.. => "\u{fffd}".into(),
        0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        n if n & 0xfffe == 0xfffe => String::new(),
        n => char::from_u32(n).map(String::from).unwrap_or_else(|| "\u{fffd}".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_only_collapsed_and_lowered() {
        assert_eq!(clean_lower("  A photo\tof a  CAT\n"), "a photo of a cat");
        assert!(matches!(fix_text("a plain sentence."), Cow::Borrowed(_)));
    }

    #[test]
    fn html_unescape_matches_python() {
        assert_eq!(
            html_unescape("&amp;lt; &amp &eacute &notit; &#39; &#x41 &#0; &#128; &#1; &#xD800;"),
            "&lt; & é ¬it; ' A \u{fffd} €  \u{fffd}"
        );
        assert_eq!(html_unescape("&nosuch; &#; & x"), "&nosuch; &#; & x");
        assert_eq!(html_unescape("&#99999999999999999999;"), "\u{fffd}");
    }

    #[test]
    fn ftfy_unescapes_only_without_angle_brackets() {
        assert_eq!(fix_text("caf&eacute; &EACUTE; &amp;amp;"), "café É &");
        assert_eq!(fix_text("<b>caf&eacute;</b>"), "<b>caf&eacute;</b>");
        // Once a line has `<`, the following lines are not unescaped either.
        assert_eq!(fix_text("&amp;\n<\n&amp;"), "&\n<\n&amp;");
    }

    #[test]
    fn ftfy_character_fixes() {
        assert_eq!(fix_text("\u{201c}ﬁne\u{201d} \u{2018}ok\u{2019}"), "\"fine\" 'ok'");
        assert_eq!(fix_text("ＡＢＣ１２３\u{3000}ｶ"), "ABC123 カ");
        assert_eq!(fix_text("a\r\nb\rc\u{2028}d"), "a\nb\nc\nd");
        assert_eq!(fix_text("\x1b[31mred\x1b[0m\u{feff}\u{7}"), "red");
        assert_eq!(fix_text("\u{85}\u{93}x\u{94}"), "…\"x\"");
        assert_eq!(fix_text("e\u{301}"), "é");
    }

    #[test]
    fn python_whitespace_and_lowercase() {
        assert_eq!(clean_lower("A\u{a0}B\u{1c}C\u{200b}D \u{3000}"), "a bc\u{200b}d");
        assert_eq!(clean_lower("ΟΔΟΣ ΣΑ"), "οδος σα");
        assert_eq!(clean_lower(" \t\n "), "");
    }
}
