//! The AFL++ target: `cargo afl build && cargo afl fuzz -i in -o out target/debug/parsers`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        flashgate_fuzz::run(data);
    });
}
