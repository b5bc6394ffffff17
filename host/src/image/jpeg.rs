//! JPEG decoding with libjpeg (mozjpeg's build of the libjpeg-turbo decoder,
//! vendored and compiled from C by the `mozjpeg-sys` crate), because Pillow
//! decodes JPEG with libjpeg-turbo and only the same integer IDCT (`islow`)
//! and "fancy" chroma upsampling give the same pixels. The pure-Rust decoder
//! in the `image` crate (zune-jpeg) differs by up to 5 levels per pixel, which
//! is 0.07 after CLIP's normalisation, seventy times the parity bar.
//!
//! Pillow's behaviour reproduced here:
//! - libjpeg's defaults: `JDCT_ISLOW`, fancy upsampling, no DCT scaling;
//! - colour: YCbCr and RGB to RGB, grayscale stays one channel (replicated
//!   later), CMYK and YCCK come out as CMYK, inverted when an Adobe APP14
//!   marker is present (Pillow's `CMYK;I`), then Pillow's `cmyk2rgb`;
//! - a file that ends before the image is complete is an error (Pillow raises
//!   "image file is truncated"); libjpeg's other warnings (extraneous bytes,
//!   bad Huffman codes it recovers from) are not, as in Pillow.
//!
//! libjpeg reports fatal errors through a callback that must not return; ours
//! unwinds (the C code is built with `-fexceptions`, the `unwinding` feature),
//! and [`decode`] catches it and turns it into a [`DecodeError`]. The SIMD
//! kernels are off because they need the `nasm` assembler at build time; they
//! are bit-exact with the C ones, so turning them on later (feature
//! `nasm_simd`, `nasm` installed by `ci/`) changes speed, not pixels.

use std::cell::Cell;
use std::os::raw::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg::ColorSpace as Jcs;
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, JWRN_JPEG_EOF};

use super::rgb::{check_size, DecodeError, DecodeLimits, ImageFormat, RgbImage};

thread_local! {
    /// Set by [`emit_message`] when libjpeg ran out of data and faked an end of image.
    static TRUNCATED: Cell<bool> = const { Cell::new(false) };
}

/// The payload [`error_exit`] unwinds with.
struct LibjpegError(String);

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let mut buf = [0u8; 200]; // JMSG_LENGTH_MAX
                              // SAFETY: libjpeg passes a live `cinfo` whose `err` points at our manager;
                              // `format_message` writes at most JMSG_LENGTH_MAX bytes, which `buf` holds
                              // (the binding declares the buffer as [u8; 80]; the C code uses 200).
    let msg = unsafe {
        let err = &*cinfo.err;
        match err.format_message {
            Some(format) => {
                let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8) = std::mem::transmute(format);
                format(cinfo, buf.as_mut_ptr());
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                String::from_utf8_lossy(&buf[..end]).into_owned()
            }
            None => format!("libjpeg error {}", err.msg_code),
        }
    };
    resume_unwind(Box::new(LibjpegError(msg)));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: as above, `err` is our live manager.
    let err = unsafe { &mut *cinfo.err };
    if level < 0 {
        err.num_warnings += 1;
        if err.msg_code == JWRN_JPEG_EOF as c_int {
            TRUNCATED.with(|t| t.set(true));
        }
    }
}

fn error_mgr() -> jpeg_error_mgr {
    // SAFETY: `jpeg_std_error` fills every field of a zeroed manager.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

fn corrupt(detail: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt { format: ImageFormat::Jpeg, detail: detail.into(), source: None }
}

fn io(e: std::io::Error) -> DecodeError {
    DecodeError::Corrupt { format: ImageFormat::Jpeg, detail: e.to_string(), source: Some(Box::new(e)) }
}

/// Decodes a JPEG file to RGB as Pillow's `open` + `convert("RGB")` does.
///
/// With `min_side`, the file may be decoded at a reduced DCT scale M/8 (the
/// smallest power-of-two M whose output keeps the shorter side at least
/// `min_side`), as Pillow's `Image.draft` does: libjpeg then runs a 1x1, 2x2
/// or 4x4 inverse DCT instead of 8x8 and skips most of the upsampling and
/// colour conversion. This changes pixels (the DCT scale is a different
/// low-pass filter than a bicubic resize), so it is only used where the
/// caller shrinks the image anyway and says how far.
pub(crate) fn decode(bytes: &[u8], limits: &DecodeLimits, min_side: Option<u32>) -> Result<RgbImage, DecodeError> {
    TRUNCATED.with(|t| t.set(false));
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, limits, min_side))) {
        Ok(result) => result,
        Err(payload) => match payload.downcast::<LibjpegError>() {
            Ok(e) => Err(corrupt(e.0)),
            // A panic that is not libjpeg's is a bug here: let it go on.
            Err(other) => resume_unwind(other),
        },
    }
}

/// The DCT scale numerator (of 8) for an image whose shorter side is `short`.
pub(crate) fn scale_numerator(short: u32, min_side: Option<u32>) -> u8 {
    let Some(min_side) = min_side else { return 8 };
    [1u8, 2, 4].into_iter().find(|&m| (u64::from(short) * u64::from(m)).div_ceil(8) >= u64::from(min_side)).unwrap_or(8)
}

fn decode_inner(bytes: &[u8], limits: &DecodeLimits, min_side: Option<u32>) -> Result<RgbImage, DecodeError> {
    let mut dec = mozjpeg::Decompress::with_err(error_mgr()).from_mem(bytes).map_err(io)?;
    let (w, h) = dec.size();
    let (width, height) = (u32::try_from(w).unwrap_or(u32::MAX), u32::try_from(h).unwrap_or(u32::MAX));
    check_size(ImageFormat::Jpeg, width, height, limits)?;
    let m = scale_numerator(width.min(height), min_side);
    if m != 8 {
        dec.scale(m);
    }
    let out_space = match dec.color_space() {
        Jcs::JCS_CMYK | Jcs::JCS_YCCK => Jcs::JCS_CMYK,
        Jcs::JCS_GRAYSCALE => Jcs::JCS_GRAYSCALE,
        _ => Jcs::JCS_RGB,
    };
    let mut started = dec.to_colorspace(out_space).map_err(io)?;
    let (source_width, source_height) = (width, height);
    let (w, h) = (started.width(), started.height());
    let (width, height) = (w as u32, h as u32);
    let raw: Vec<u8> = started.read_scanlines().map_err(io)?;
    started.finish().map_err(io)?;
    if TRUNCATED.with(Cell::get) {
        return Err(corrupt("the file ends before the image data does"));
    }
    let n = w * h;
    let pixels = match out_space {
        Jcs::JCS_GRAYSCALE => raw.iter().take(n).flat_map(|&v| [v, v, v]).collect(),
        Jcs::JCS_CMYK => cmyk_to_rgb_like_pil(&raw, has_adobe_marker(bytes)),
        _ => raw,
    };
    let image = RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| corrupt("libjpeg returned fewer rows than the header says"))?;
    Ok(image.with_source_size(source_width, source_height))
}

/// Pillow's `cmyk2rgb` (Convert.c), after its `CMYK;I` inversion for Adobe files.
fn cmyk_to_rgb_like_pil(cmyk: &[u8], inverted: bool) -> Vec<u8> {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let [c, m, y, k] = if inverted { [!p[0], !p[1], !p[2], !p[3]] } else { [p[0], p[1], p[2], p[3]] };
        let nk = 255 - i32::from(k);
        for v in [c, m, y] {
            out.push((nk - muldiv255(i32::from(v), nk)).clamp(0, 255) as u8);
        }
    }
    out
}

/// Calls `f(marker, segment)` for each marker segment before the first scan,
/// until `f` returns `Some`.
fn find_segment<T>(bytes: &[u8], mut f: impl FnMut(u8, &[u8]) -> Option<T>) -> Option<T> {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None; // start of scan / end of image
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let segment = &bytes[i + 4..(i + 2 + len).clamp(i + 4, bytes.len())];
        if let Some(found) = f(marker, segment) {
            return Some(found);
        }
        i += 2 + len;
    }
    None
}

/// Whether the JPEG has an Adobe APP14 segment before its first scan (Pillow's `adobe` flag).
fn has_adobe_marker(bytes: &[u8]) -> bool {
    find_segment(bytes, |marker, seg| (marker == 0xEE && seg.starts_with(b"Adobe")).then_some(())).is_some()
}

/// Width and height from the first SOF segment, if one is found before the first scan.
pub(crate) fn frame_size(bytes: &[u8]) -> Option<(u32, u32)> {
    find_segment(bytes, |marker, seg| {
        let sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        (sof && seg.len() >= 5)
            .then(|| (u32::from(u16::from_be_bytes([seg[3], seg[4]])), u32::from(u16::from_be_bytes([seg[1], seg[2]]))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_formula_is_pillows() {
        // Pillow: CMYK (0, 0, 0, 0) is white, K = 255 is black, C = 255 removes red.
        assert_eq!(cmyk_to_rgb_like_pil(&[0, 0, 0, 0], false), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb_like_pil(&[0, 0, 0, 255], false), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb_like_pil(&[255, 0, 0, 0], false), [0, 255, 255]);
        assert_eq!(cmyk_to_rgb_like_pil(&[255, 255, 255, 255], true), [255, 255, 255]);
    }

    #[test]
    fn scale_keeps_the_short_side_at_least_min_side() {
        assert_eq!(scale_numerator(3000, None), 8);
        assert_eq!(scale_numerator(3000, Some(448)), 2); // 750
        assert_eq!(scale_numerator(3000, Some(224)), 1); // 375
        assert_eq!(scale_numerator(3000, Some(376)), 2);
        assert_eq!(scale_numerator(1000, Some(448)), 4); // 500
        assert_eq!(scale_numerator(640, Some(448)), 8); // 320 would be too small
    }

    #[test]
    fn markers_are_found_before_the_scan_only() {
        let sof = [0xFF, 0xC0, 0, 11, 8, 0x01, 0xAB, 0x02, 0x80, 1, 1, 0x11, 0];
        let adobe = [0xFF, 0xEE, 0, 14, b'A', b'd', b'o', b'b', b'e', 0, 100, 0, 0, 0, 0, 2];
        let sos = [0xFF, 0xDA, 0, 2];
        let file = [&[0xFF, 0xD8][..], &sof, &adobe, &sos].concat();
        assert_eq!(frame_size(&file), Some((640, 427)));
        assert!(has_adobe_marker(&file));
        let late = [&[0xFF, 0xD8][..], &sof, &sos, &adobe].concat();
        assert!(!has_adobe_marker(&late));
    }
}
