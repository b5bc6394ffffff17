//! Times CLIP preprocessing alone (decode + PIL-exact resize/crop + normalise),
//! one thread, for issue 19's "preprocessing cost per image against model time".
//!
//!     cargo run --release -p switchyard --example preprocess_cost -- DIR [ROUNDS]
use std::time::Instant;

use switchyard::clip::preprocess::{preprocess, resize_and_crop, PreprocessConfig};
use switchyard::image::{decode_rgb, DecodeLimits};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: preprocess_cost DIR [ROUNDS]");
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("readable DIR").map(|e| e.unwrap().path()).collect();
    files.sort();
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let cfg = PreprocessConfig::openai(224);
    let limits = DecodeLimits::default();
    let n = bytes.len() as f64;
    for _ in 0..rounds {
        let t = Instant::now();
        let imgs: Vec<_> = bytes.iter().map(|b| decode_rgb(b, &limits).unwrap()).collect();
        let decode = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let crops: Vec<_> = imgs.iter().map(|i| resize_and_crop(i, &cfg)).collect();
        let resize = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in &imgs {
            std::hint::black_box(preprocess(i, &cfg));
        }
        let pre = t.elapsed().as_secs_f64();
        std::hint::black_box(crops);
        println!(
            "decode {:.2} ms  resize+crop {:.2} ms  resize+crop+normalise {:.2} ms (per image, {} files)",
            1e3 * decode / n,
            1e3 * resize / n,
            1e3 * pre / n,
            bytes.len()
        );
    }
}
