include!("../plugin_build.rs");

fn main() {
    plugin_build(Torch::NotLinked);
}
