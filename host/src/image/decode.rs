//! Image bytes to 8-bit RGB, the way `PIL.Image.open(path).convert("RGB")`
//! does it, because that is what the Python service fed open_clip and
//! insightface, and the embeddings must not move when the host replaces it.
//!
//! What "the way PIL does it" means per mode (each checked by the parity test
//! in `tests/tests/clip_preprocess.rs` against Pillow itself):
//!
//! - alpha (RGBA, LA, PNG `tRNS`, palette transparency) is dropped, not
//!   composited: `convert("RGB")` keeps the colour channels as stored;
//! - grayscale is replicated into R, G and B; palettes are looked up;
//! - 16-bit RGB(A) and gray+alpha keep the high byte (Pillow unpacks them with
//!   `RGB;16B` / `LA;16B`), but 16-bit grayscale opens as mode `I;16`, whose
//!   conversion to RGB *clips* at 255 instead of scaling: a 16-bit gray PNG is
//!   nearly white after `convert("RGB")`. That is reproduced on purpose;
//! - JPEG CMYK is inverted when an Adobe APP14 marker is present (Pillow reads
//!   it as `CMYK;I`), then converted with Pillow's `cmyk2rgb` integer formula;
//! - EXIF orientation is **not** applied: PIL's `open` ignores it, so a
//!   portrait phone photo reaches CLIP sideways, as it did in Python;
//! - ICC profiles and PNG gamma are ignored, as PIL ignores them on open;
//! - GIF and WebP animations give their first frame.
//!
//! Before any pixel is decoded, the header's width x height is checked against
//! [`DecodeLimits::max_pixels`], so a 50 kB file that claims 100000x100000
//! pixels is refused without allocating gigabytes (a decompression bomb).
//!
//! JPEG goes through libjpeg (`jpeg.rs`), as in Pillow: the pure-Rust
//! JPEG decoder gives different pixels. Every other format uses the `image`
//! crate's pure-Rust decoders, which the parity test finds bit-exact with
//! Pillow's (libpng/zlib, libwebp, libtiff, Pillow's own GIF and BMP code).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError};

use super::rgb::check_size;
pub use super::rgb::{DecodeError, DecodeLimits, ImageFormat, RgbImage, DEFAULT_MAX_PIXELS};

/// Decodes an image file's bytes to 8-bit RGB with PIL's `open` + `convert("RGB")` semantics.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    decode_rgb_scaled(bytes, limits, None)
}

/// [`decode_rgb`] for a caller that will shrink the image so that its shorter
/// side is about `min_side`: a large JPEG may then come out at 1/2, 1/4 or 1/8
/// of its size straight from the DCT (Pillow's `draft`), its shorter side
/// still at least `min_side`. Other formats, and `None`, decode at full size.
pub fn decode_rgb_scaled(bytes: &[u8], limits: &DecodeLimits, min_side: Option<u32>) -> Result<RgbImage, DecodeError> {
    let format = sniff(bytes)?;
    // Where the size sits at a fixed place, check it before any decoder runs, so that a
    // zero or huge size gets its own error instead of the decoder's wording.
    if let Some((width, height)) = peek_dimensions(format, bytes) {
        check_size(format, width, height, limits)?;
    }
    match format {
        ImageFormat::Jpeg => super::jpeg::decode(bytes, limits, min_side),
        ImageFormat::Pnm => super::pnm::decode(bytes, limits),
        _ => decode_with_image(bytes, format, limits),
    }
}

/// Recognises the container from its magic bytes.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    if bytes.len() > 2 && bytes[0] == b'P' && matches!(bytes[1], b'1'..=b'6') && bytes[2].is_ascii_whitespace() {
        return Ok(ImageFormat::Pnm);
    }
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => Ok(ImageFormat::Jpeg),
        Ok(image::ImageFormat::Png) => Ok(ImageFormat::Png),
        Ok(image::ImageFormat::Gif) => Ok(ImageFormat::Gif),
        Ok(image::ImageFormat::WebP) => Ok(ImageFormat::WebP),
        Ok(image::ImageFormat::Bmp) => Ok(ImageFormat::Bmp),
        Ok(image::ImageFormat::Tiff) => Ok(ImageFormat::Tiff),
        // Pillow reads P1-P6 (`pnm`); PAM (P7) and the float maps it does not.
        Ok(image::ImageFormat::Pnm) => Err(DecodeError::UnsupportedFormat { format: "PAM (P7) or PFM".into() }),
        Ok(other) => Err(DecodeError::UnsupportedFormat { format: format!("{other:?}").to_uppercase() }),
        Err(_) => {
            if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
                let brand = String::from_utf8_lossy(&bytes[8..12]).into_owned();
                return Err(DecodeError::UnsupportedFormat { format: format!("ISO media (`{brand}`: HEIC/AVIF)") });
            }
            let magic = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
            Err(DecodeError::NotAnImage { magic })
        }
    }
}

/// The size from the header, for formats that store it at a fixed offset.
fn peek_dimensions(format: ImageFormat, b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| b.get(i..i + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    let le32 = |i: usize| b.get(i..i + 4).map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let le16 = |i: usize| b.get(i..i + 2).map(|s| u32::from(u16::from_le_bytes([s[0], s[1]])));
    match format {
        ImageFormat::Png if b.get(12..16) == Some(b"IHDR") => Some((be32(16)?, be32(20)?)),
        ImageFormat::Gif => Some((le16(6)?, le16(8)?)),
        // BITMAPINFOHEADER and later: signed width and height (negative height = top-down).
        ImageFormat::Bmp if le32(14)? >= 40 => Some((le32(18)?.unsigned_abs(), le32(22)?.unsigned_abs())),
        ImageFormat::Jpeg => super::jpeg::frame_size(b),
        ImageFormat::Pnm => super::pnm::dimensions(b),
        _ => None,
    }
}

/// The `image` crate's name for a format it decodes.
fn image_crate_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::WebP => image::ImageFormat::WebP,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Pnm => image::ImageFormat::Pnm, // decoded by `pnm`, never by the image crate
    }
}

fn map_image_error(
    format: ImageFormat,
    (width, height): (u32, u32),
    limits: &DecodeLimits,
    e: ImageError,
) -> DecodeError {
    match e {
        ImageError::Unsupported(u) => {
            DecodeError::UnsupportedFeature { format, detail: u.to_string(), source: Some(Box::new(u)) }
        }
        ImageError::Limits(_) if u64::from(width) * u64::from(height) > limits.max_pixels => {
            DecodeError::TooManyPixels {
                format,
                width,
                height,
                pixels: u64::from(width) * u64::from(height),
                max_pixels: limits.max_pixels,
            }
        }
        // Before the size is known (a TIFF whose tags ask the decoder for gigabytes), or
        // within the pixel limit: the file declares more data than the decoder may
        // allocate. Not "0x0 = 0 pixels, over the limit" (found by fuzz/decode_preprocess).
        ImageError::Limits(l) => DecodeError::Corrupt {
            format,
            detail: format!("it asks for more memory than the decoder's limits allow: {l}"),
            source: Some(Box::new(l)),
        },
        other => DecodeError::Corrupt { format, detail: other.to_string(), source: Some(Box::new(other)) },
    }
}

fn decode_with_image(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image_crate_format(format));
    let mut image_limits = image::Limits::no_limits();
    // 16-bit RGBA is the widest layout decoded here: 8 bytes a pixel, plus slack for decoder state.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(|e| map_image_error(format, (0, 0), limits, e))?;
    let dims = decoder.dimensions();
    check_size(format, dims.0, dims.1, limits)?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(format, dims, limits, e))?;
    to_rgb_like_pil(format, img)
}

/// `convert("RGB")` of what PIL would have opened.
fn to_rgb_like_pil(format: ImageFormat, img: DynamicImage) -> Result<RgbImage, DecodeError> {
    let (width, height) = (img.width(), img.height());
    let n = width as usize * height as usize;
    let mut out = Vec::with_capacity(n * 3);
    match img {
        DynamicImage::ImageRgb8(b) => out = b.into_raw(),
        DynamicImage::ImageRgba8(b) => b.chunks_exact(4).for_each(|p| out.extend_from_slice(&p[..3])),
        DynamicImage::ImageLuma8(b) => b.iter().for_each(|&v| out.extend_from_slice(&[v, v, v])),
        DynamicImage::ImageLumaA8(b) => b.chunks_exact(2).for_each(|p| out.extend_from_slice(&[p[0], p[0], p[0]])),
        // Pillow: 16-bit gray is mode I;16, and I;16 -> RGB clips at 255.
        DynamicImage::ImageLuma16(b) => b.iter().for_each(|&v| {
            let v = v.min(255) as u8;
            out.extend_from_slice(&[v, v, v])
        }),
        // Pillow: LA;16B, RGB;16B, RGBA;16B keep the most significant byte.
        DynamicImage::ImageLumaA16(b) => b.chunks_exact(2).for_each(|p| {
            let v = (p[0] >> 8) as u8;
            out.extend_from_slice(&[v, v, v])
        }),
        DynamicImage::ImageRgb16(b) => out.extend(b.iter().map(|&v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(b) => b
            .chunks_exact(4)
            .for_each(|p| out.extend_from_slice(&[(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])),
        other => {
            return Err(DecodeError::UnsupportedFeature {
                format,
                detail: format!("pixel layout {:?}", other.color()),
                source: None,
            })
        }
    }
    Ok(RgbImage::from_decoded(width, height, out))
}
