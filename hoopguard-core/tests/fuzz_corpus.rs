//! The fuzz targets (`hoopguard_core::fuzz`, run under libFuzzer from `fuzz/`) as a plain test:
//! every committed corpus input, and a few thousand deterministic mutations of them, through
//! each target. Where cargo-fuzz cannot be installed, this is what keeps the targets honest.

use std::path::PathBuf;

/// xorshift64*: deterministic, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..(rng.next() % 8 + 1) {
        let pos = if out.is_empty() {
            0
        } else {
            (rng.next() as usize) % out.len()
        };
        match rng.next() % 5 {
            0 if !out.is_empty() => out[pos] = rng.next() as u8,
            1 => out.insert(pos, rng.next() as u8),
            2 if !out.is_empty() => {
                out.remove(pos);
            }
            3 => {
                // Interesting bytes for these parsers.
                let pick = [
                    b'%', b'\n', b'\r', b'&', b'=', b'/', b'.', b'"', b':', 0xe2, 0x82, 0xac,
                ];
                out.insert(pos, pick[(rng.next() as usize) % pick.len()]);
            }
            _ => {
                let len = out.len();
                if len > 0 {
                    let a = (rng.next() as usize) % len;
                    let chunk: Vec<u8> = out[a..(a + 16).min(len)].to_vec();
                    out.splice(pos..pos, chunk);
                }
            }
        }
    }
    out
}

#[test]
fn every_corpus_input_and_its_mutations_pass_every_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, target) in hoopguard_core::fuzz::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(!inputs.is_empty(), "no corpus for {name}");
        inputs.push(Vec::new());
        for input in &inputs {
            target(input);
        }
        for i in 0..3000 {
            let base = &inputs[i % inputs.len()];
            target(&mutate(&mut rng, base));
        }
    }
}
