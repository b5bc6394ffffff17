//! Image decoding and resampling that reproduce what the Python service did
//! with PIL, so the host feeds models the same pixels the Python code did.
//!
//! - [`decode`]: bytes to 8-bit RGB, with PIL's `Image.open(..).convert("RGB")`
//!   semantics per format and mode, and a pixel limit checked from the header
//!   before any pixel is decoded (decompression bombs). JPEG is decoded by
//!   libjpeg (`jpeg`, private), as Pillow does, for identical pixels;
//!   Netpbm by Pillow's own rules (`pnm`, private).
//! - `rgb` (private, re-exported here and by [`decode`]): the decoded image,
//!   the limits and the decode errors, which every decoder shares.
//! - [`resize`]: PIL's two-pass convolution resampling (bicubic, bilinear),
//!   bit-exact, including its fixed-point weights and the uint8 rounding
//!   between the horizontal and vertical passes.

pub mod decode;
mod jpeg;
mod pnm;
pub mod resize;
mod rgb;

pub use decode::decode_rgb;
pub use rgb::{DecodeError, DecodeLimits, ImageFormat, RgbImage};
