//! The decoded image and the words for what can go wrong: [`RgbImage`],
//! [`DecodeLimits`], [`ImageFormat`] and [`DecodeError`], shared by the
//! decoders (`decode` for the `image` crate's formats, `jpeg`, `pnm`) and by
//! everything that reads pixels ([`super::resize`], the pipelines). A module
//! of its own so that the format decoders and their dispatcher do not depend
//! on each other.

use std::fmt;

/// PIL's `Image.MAX_IMAGE_PIXELS`: the default pixel limit (about 89.5 MP,
/// a 9459x9459 image). Camera photos (12-50 MP) pass; bombs do not.
pub const DEFAULT_MAX_PIXELS: u64 = 89_478_485;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width x height, checked from the header before decoding.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC).
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// The size the file declares, where it was decoded at reduced scale.
    source: Option<(u32, u32)>,
}

impl RgbImage {
    /// Wraps interleaved RGB pixels; `None` if `pixels.len() != width * height * 3`.
    pub fn from_raw(width: u32, height: u32, pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() as u64 == u64::from(width) * u64::from(height) * 3).then_some(Self {
            width,
            height,
            pixels,
            source: None,
        })
    }

    /// A decoder's output, which holds `width * height * 3` bytes by construction.
    pub(super) fn from_decoded(width: u32, height: u32, pixels: Vec<u8>) -> Self {
        debug_assert_eq!(pixels.len() as u64, u64::from(width) * u64::from(height) * 3);
        Self { width, height, pixels, source: None }
    }

    /// Records the file's own size for an image decoded at reduced scale.
    pub(crate) fn with_source_size(mut self, width: u32, height: u32) -> Self {
        self.source = ((width, height) != (self.width, self.height)).then_some((width, height));
        self
    }

    /// The (width, height) of the image in the file: differs from the decoded
    /// size after a reduced-scale decode ([`decode_rgb_scaled`]).
    pub fn source_size(&self) -> (u32, u32) {
        self.source.unwrap_or((self.width, self.height))
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The interleaved RGB bytes, `width * height * 3` of them.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Gives the pixel buffer back.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

impl fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RgbImage({}x{})", self.width, self.height)
    }
}

/// The container formats [`decode_rgb`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    Tiff,
    /// PBM, PGM, PPM (P1 to P6), as Pillow reads them; not PAM (P7), which Pillow does not.
    Pnm,
}

impl ImageFormat {
    /// The format's usual name, e.g. `JPEG`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::WebP => "WebP",
            Self::Bmp => "BMP",
            Self::Tiff => "TIFF",
            Self::Pnm => "PNM",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const SUPPORTED: &str = "JPEG, PNG, WebP, GIF, BMP or TIFF";

/// Why bytes could not be turned into an RGB image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Zero bytes.
    #[error("the image is empty (0 bytes); send the file's contents")]
    Empty,
    /// The bytes start like no image format this decoder knows.
    #[error("the data is not a recognised image (it starts with `{magic}`); send {SUPPORTED}")]
    NotAnImage {
        /// The first bytes, hex-encoded.
        magic: String,
    },
    /// A known image format that this build does not decode (e.g. AVIF, HEIC).
    #[error("{format} images are not supported; convert it to {SUPPORTED}")]
    UnsupportedFormat {
        /// What the data looked like.
        format: String,
    },
    /// A supported container with a feature its decoder does not handle.
    #[error(
        "this {format} image uses a feature that cannot be decoded ({detail}); re-encode it as 8-bit RGB JPEG or PNG"
    )]
    UnsupportedFeature {
        format: ImageFormat,
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The header says the image has no pixels.
    #[error("the {format} image is {width}x{height}, which has no pixels; send an image at least 1x1")]
    ZeroSize { format: ImageFormat, width: u32, height: u32 },
    /// More pixels than [`DecodeLimits::max_pixels`] (checked before decoding).
    #[error(
        "the {format} image is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}; \
         downscale it, or raise the pixel limit if such images are expected"
    )]
    TooManyPixels { format: ImageFormat, width: u32, height: u32, pixels: u64, max_pixels: u64 },
    /// The data is damaged or cut short.
    #[error(
        "the {format} data is corrupt or truncated ({detail}); check that the whole file was sent, or re-encode it"
    )]
    Corrupt {
        format: ImageFormat,
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Refuses a size with no pixels, or more than [`DecodeLimits::max_pixels`], before decoding.
pub(crate) fn check_size(
    format: ImageFormat,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSize { format, width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels { format, width, height, pixels, max_pixels: limits.max_pixels });
    }
    Ok(())
}
