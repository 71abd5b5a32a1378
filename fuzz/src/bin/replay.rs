//! Run the fuzzed parsers over files (a corpus, a crash AFL++ found) without AFL++:
//! `cargo run --bin replay -- in/* out/default/crashes/*`.

fn main() -> std::io::Result<()> {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path)?;
        flashgate_fuzz::run(&data);
        println!("{path}: ok");
    }
    Ok(())
}
