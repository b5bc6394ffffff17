//! CLIP: text tokenization and image preprocessing equal to open_clip's, done
//! once in the host so that every plugin gets identical inputs.

pub mod model;
pub mod pipeline;
pub mod preprocess;
pub mod text_clean;
pub mod tokenizer;
