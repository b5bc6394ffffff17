//! Test data in and out: synthetic photo-like JPEGs to send, and the
//! embeddings of an answer with their cosine similarity.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Embeddings from an `embeddings` array.
pub fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("an array of embeddings")
        .iter()
        .map(|e| e.as_array().expect("an embedding").iter().map(|x| x.as_f64().expect("a number") as f32).collect())
        .collect()
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Writes `n` synthetic photos-like JPEGs (gradients and blocks, `w`x`h`) into `dir`; returns their paths.
pub fn make_images(dir: &Path, n: usize, w: u32, h: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("image folder");
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let k = i as u32 * 37;
                image::Rgb([
                    ((x + k) % 256) as u8,
                    ((y * 2 + k) % 256) as u8,
                    (((x / 16 + y / 16) * 40 + k) % 256) as u8,
                ])
            });
            let path = dir.join(format!("img{i:03}.jpg"));
            img.save(&path).expect("write a JPEG");
            path
        })
        .collect()
}
