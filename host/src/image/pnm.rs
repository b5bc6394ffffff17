//! Netpbm (PBM, PGM, PPM: P1 to P6) decoded as Pillow's `PpmImagePlugin`
//! does, then `convert("RGB")`: the image crate scales samples of a maxval
//! other than 255 with different rounding, so the pixels would differ.
//!
//! Pillow's rules, which this follows exactly:
//! - P1 / P4 (bitmaps): mode `1`, a set bit (or `1`) is black, else white.
//! - P2 / P5 gray, P3 / P6 colour. A sample is scaled to `out_max` as
//!   `round(v / maxval * out_max)` (Python's `round`: ties to even, on the
//!   float), `out_max` 255, or 65535 for gray with maxval > 255 (mode `I`,
//!   which `convert("RGB")` clips at 255). Raw files with maxval 255 are taken
//!   as they are, and raw gray with maxval 65535 as 16-bit values, unscaled.
//! - A sample over maxval in a plain file is an error; so are missing data
//!   and a maxval outside 1..=65535.

use super::rgb::{check_size, DecodeError, DecodeLimits, ImageFormat, RgbImage};

fn corrupt(detail: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt { format: ImageFormat::Pnm, detail: detail.into(), source: None }
}

/// Reads whitespace-separated header tokens, skipping `#` comments.
struct Header<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Header<'_> {
    fn number(&mut self, what: &str) -> Result<u32, DecodeError> {
        loop {
            match self.bytes.get(self.at) {
                Some(b) if b.is_ascii_whitespace() => self.at += 1,
                Some(b'#') => {
                    while self.bytes.get(self.at).is_some_and(|b| *b != b'\n' && *b != b'\r') {
                        self.at += 1;
                    }
                }
                Some(_) => break,
                None => return Err(corrupt(format!("the header ends before its {what}"))),
            }
        }
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let token = &self.bytes[start..self.at];
        if token.is_empty() || token.len() > 10 {
            return Err(corrupt(format!("the header's {what} is not a number")));
        }
        // After the last token exactly one whitespace byte, then the data.
        match self.bytes.get(self.at) {
            Some(b) if b.is_ascii_whitespace() => self.at += 1,
            Some(b'#') => {}
            _ => return Err(corrupt(format!("the header's {what} is not followed by whitespace"))),
        }
        std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| corrupt(format!("the header's {what} is too large")))
    }
}

/// The header's size, for the pixel limit before anything is decoded.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut h = Header { bytes, at: 2 };
    Some((h.number("width").ok()?, h.number("height").ok()?))
}

/// How one sample becomes an 8-bit RGB channel: Pillow's scaling, then `convert("RGB")`.
fn channel(v: u32, maxval: u32, gray_i: bool, exact: bool) -> u8 {
    if exact {
        return v.min(255) as u8;
    }
    let out_max = if gray_i { 65535.0 } else { 255.0 };
    let scaled = (f64::from(v) / f64::from(maxval) * out_max).round_ties_even().min(out_max);
    scaled.min(255.0) as u8
}

/// Decodes a P1-P6 file.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let kind = bytes.get(1).copied().unwrap_or(0);
    let mut h = Header { bytes, at: 2 };
    let (width, height) = (h.number("width")?, h.number("height")?);
    check_size(ImageFormat::Pnm, width, height, limits)?;
    let bitmap = matches!(kind, b'1' | b'4');
    let maxval = if bitmap { 1 } else { h.number("maxval")? };
    if !(1..=65535).contains(&maxval) {
        return Err(corrupt(format!("maxval {maxval} is outside 1 to 65535")));
    }
    let bands = if matches!(kind, b'3' | b'6') { 3 } else { 1 };
    let (w, n) = (width as usize, width as usize * height as usize);
    let data = &bytes[h.at..];
    let mut samples: Vec<u32> = Vec::with_capacity(n * bands);
    match kind {
        b'4' => {
            let row = w.div_ceil(8);
            if data.len() < row * height as usize {
                return Err(corrupt("the bitmap's data is truncated"));
            }
            for y in 0..height as usize {
                for x in 0..w {
                    samples.push(u32::from(data[y * row + x / 8] >> (7 - x % 8) & 1 == 0) * 255);
                }
            }
        }
        b'1' => {
            for &b in data.iter().filter(|b| !b.is_ascii_whitespace()).take(n) {
                match b {
                    b'0' => samples.push(255),
                    b'1' => samples.push(0),
                    _ => return Err(corrupt("a plain bitmap holds something other than 0 and 1")),
                }
            }
        }
        b'2' | b'3' => {
            let text = std::str::from_utf8(data).map_err(|_| corrupt("plain samples that are not text"))?;
            let tokens = text.lines().map(|l| l.split('#').next().unwrap_or_default()).flat_map(str::split_whitespace);
            for token in tokens.take(n * bands) {
                let v: u32 = token.parse().map_err(|_| corrupt(format!("`{token}` is not a sample")))?;
                if v > maxval {
                    return Err(corrupt(format!("the sample {v} is over maxval {maxval}")));
                }
                samples.push(v);
            }
        }
        _ => {
            let wide = maxval > 255;
            let size = if wide { 2 } else { 1 };
            let want = n * bands * size;
            if data.len() < want {
                return Err(corrupt(format!("the data is truncated: {} of {want} bytes", data.len())));
            }
            if wide {
                samples.extend(data[..want].chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))));
            } else {
                samples.extend(data[..want].iter().map(|&b| u32::from(b)));
            }
        }
    }
    if samples.len() < n * bands {
        return Err(corrupt(format!("the data is truncated: {} of {} samples", samples.len(), n * bands)));
    }
    let raw = matches!(kind, b'5' | b'6');
    let gray_i = bands == 1 && maxval > 255;
    // Pillow's raw decoder takes maxval 255 as is, and 16-bit gray at maxval 65535 as I;16B.
    let exact = bitmap || (raw && (maxval == 255 || (gray_i && maxval == 65535)));
    let mut pixels = Vec::with_capacity(n * 3);
    if bands == 3 {
        pixels.extend(samples.iter().map(|&v| channel(v, maxval, false, exact)));
    } else {
        for &v in &samples {
            let c = channel(v, maxval, gray_i, exact);
            pixels.extend_from_slice(&[c, c, c]);
        }
    }
    RgbImage::from_raw(width, height, pixels).ok_or_else(|| corrupt("the samples do not fill the image"))
}
