//! Image decoding and resampling that reproduce what the Python service did
//! with PIL, so the host feeds models the same pixels the Python code did.
//!
//! - [`decode`]: bytes to 8-bit RGB, with PIL's `Image.open(..).convert("RGB")`
//!   semantics per format and mode, and a pixel limit checked from the header
//!   before any pixel is decoded (decompression bombs). JPEG is decoded by
//!   libjpeg (`jpeg`, private), as Pillow does, for identical pixels;
//!   Netpbm by Pillow's own rules (`pnm`, private).
//! - [`resize`]: PIL's two-pass convolution resampling (bicubic, bilinear),
//!   bit-exact, including its fixed-point weights and the uint8 rounding
//!   between the horizontal and vertical passes.

pub mod decode;
mod jpeg;
mod pnm;
pub mod resize;

pub use decode::{decode_rgb, DecodeError, DecodeLimits, ImageFormat, RgbImage};
