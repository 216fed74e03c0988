//! Writes the masking benchmark corpora as files, for measuring `hoopguard mask` by hand:
//!
//! ```sh
//! cargo run --release --example gen-corpus -- target/corpus 64
//! ./target/release/hoopguard mask --stats < target/corpus/json-clean.json > /dev/null
//! ```

#[path = "../benches/support/corpus.rs"]
mod corpus;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "target/corpus".into()));
    let mib: usize = args.next().and_then(|m| m.parse().ok()).unwrap_or(64);
    let size = mib * 1024 * 1024;
    std::fs::create_dir_all(&dir)?;
    for (name, data) in [
        ("json-clean.json", corpus::aws_json(size, false, 1)),
        ("json-dense.json", corpus::aws_json(size, true, 2)),
        ("aws.xml", corpus::aws_xml(size, 3)),
        ("text-unicode.txt", corpus::unicode_text(size, 4)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &data)?;
        println!("{} ({} bytes)", path.display(), data.len());
    }
    Ok(())
}
