include!("../../plugin-sdk/plugin_build.rs");

fn main() {
    plugin_build(Torch::Linked);
}
