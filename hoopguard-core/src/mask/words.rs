//! The prefilter for token rules whose anchor starts a word (`sk-proj-`, `npm_`, `hvs.`): at
//! each start of an ASCII word, one look-up of its first two bytes in a bit set; only where a
//! rule's anchor starts with them are the anchors compared.
//!
//! Literal-set prefilters (Teddy) are fast up to a few dozen patterns; the token rules have a
//! couple of hundred anchors. A token must start a word anyway (the rules check the boundary
//! before it), and words start every few bytes, so testing word starts against a 64 Ki-bit set
//! of first byte pairs finds every anchor in one pass, 64 bytes of classification at a time.

use super::detect::{Confirm, boundary_before, is_word};
use super::rules::{self, RULES};

/// The anchors of the token rules that start a word, by their first two bytes.
pub(crate) struct WordAnchors {
    /// Bit `b0 << 8 | b1` set when some anchor starts with `b0 b1`.
    bits: Box<[u64; 1024]>,
    /// Bits for a hash of an anchor's first three bytes, or of its first four when it has
    /// more: a second look that words merely starting like an anchor (`ap-south`, `running`)
    /// rarely pass.
    bits3: Box<[u64; 1024]>,
    bits4: Box<[u64; 1024]>,
    /// (first two bytes, anchors starting with them: (rule, anchor), longest first), sorted.
    lists: Vec<(u16, Vec<(usize, &'static str)>)>,
}

impl std::fmt::Debug for WordAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordAnchors")
            .field("pairs", &self.lists.len())
            .finish_non_exhaustive()
    }
}

/// Whether a token rule's anchors are found by word starts: no lead before the anchor, not a
/// keyed rule, and every anchor starts with a word byte.
pub(crate) fn starts_words(rule: &rules::TokenRule) -> bool {
    rule.lead.is_none()
        && rule.keyed.is_none()
        && rule
            .anchors
            .iter()
            .all(|a| a.len() >= 3 && is_word(a.as_bytes()[0]))
}

impl WordAnchors {
    /// The anchors of the rules that are on and [start words](starts_words); `None` if none.
    pub(crate) fn new(on: &[bool]) -> Option<WordAnchors> {
        let mut bits = Box::new([0u64; 1024]);
        let mut bits3 = Box::new([0u64; 1024]);
        let mut bits4 = Box::new([0u64; 1024]);
        let mut lists: Vec<(u16, Vec<(usize, &'static str)>)> = Vec::new();
        for (k, rule) in RULES.iter().enumerate() {
            if !on[k] || !starts_words(rule) {
                continue;
            }
            for a in rule.anchors {
                let b = a.as_bytes();
                let pair = u16::from(b[0]) << 8 | u16::from(b[1]);
                bits[pair as usize / 64] |= 1 << (pair % 64);
                let h = if b.len() == 3 { hash3(b) } else { hash4(b) };
                let table = if b.len() == 3 { &mut bits3 } else { &mut bits4 };
                table[h / 64] |= 1 << (h % 64);
                match lists.iter_mut().find(|(p, _)| *p == pair) {
                    Some((_, l)) => l.push((k, a)),
                    None => lists.push((pair, vec![(k, a)])),
                }
            }
        }
        if lists.is_empty() {
            return None;
        }
        for (_, l) in &mut lists {
            l.sort_by_key(|(_, a)| std::cmp::Reverse(a.len()));
        }
        lists.sort_by_key(|(p, _)| *p);
        Some(WordAnchors {
            bits,
            bits3,
            bits4,
            lists,
        })
    }

    /// The longest anchor.
    pub(crate) fn longest(&self) -> usize {
        self.lists
            .iter()
            .flat_map(|(_, l)| l.iter().map(|(_, a)| a.len()))
            .max()
            .unwrap_or(0)
    }

    #[inline(always)]
    fn pair_on(&self, b0: u8, b1: u8) -> bool {
        let pair = (b0 as usize) << 8 | b1 as usize;
        self.bits[pair / 64] & (1 << (pair % 64)) != 0
    }

    /// Whether the bytes at `p` may start an anchor: its first two bytes, then a hash of three
    /// or four. Near the end of the data, the first two decide (more data may follow).
    #[inline(always)]
    fn maybe(&self, hay: &[u8], p: usize) -> bool {
        if !self.pair_on(hay[p], hay[p + 1]) {
            return false;
        }
        if p + 4 > hay.len() {
            return true;
        }
        let h3 = hash3(&hay[p..p + 3]);
        let h4 = hash4(&hay[p..p + 4]);
        self.bits3[h3 / 64] & (1 << (h3 % 64)) != 0 || self.bits4[h4 / 64] & (1 << (h4 % 64)) != 0
    }

    /// The first position at or after `from` where a word starts with the first two bytes of
    /// an anchor (or a word starts at the last byte of data that may still grow). A superset:
    /// [`WordAnchors::confirm`] decides.
    pub(crate) fn next(&self, hay: &[u8], from: usize, eof: bool) -> Option<usize> {
        let len = hay.len();
        let mut i = from;
        // The first bytes, one at a time: a window needs six bytes before it.
        while i < len && i < 6 {
            if let Some(p) = self.at(hay, i, eof) {
                return Some(p);
            }
            i += 1;
        }
        // 58 positions at a time from 64-byte windows (six bytes before them for escapes, and
        // the next 64 bytes for the length a token needs).
        while i + 122 <= len {
            let w: &[u8; 64] = hay[i - 6..i + 58].try_into().expect("64 bytes");
            let next: &[u8; 64] = hay[i + 58..i + 122].try_into().expect("64 bytes");
            let (word, backslash, stop) = word_classes(w);
            let (_, _, stop_next) = word_classes(next);
            // A word byte after a non-word byte, or two or six bytes after a backslash (the end
            // of `\n` or `\u000a`): a superset of what `boundary_before` accepts.
            let mut starts = word & (!(word << 1) | (backslash << 2) | (backslash << 6)) & !0x3f;
            // Every anchored token has MIN_TOKEN bytes or more, none of them a quote, `<`, `,`
            // or a backslash: most words of JSON and XML end sooner.
            let clear = !(u128::from(stop) | u128::from(stop_next) << 64);
            let c2 = clear & (clear >> 1);
            let c4 = c2 & (c2 >> 2);
            let c8 = c4 & (c4 >> 4);
            let c16 = c8 & (c8 >> (MIN_TOKEN / 2));
            starts &= c16 as u64;
            let mut m = starts;
            while m != 0 {
                let k = m.trailing_zeros() as usize;
                m &= m - 1;
                let p = i - 6 + k;
                if self.maybe(hay, p) {
                    return Some(p);
                }
            }
            i += 58;
        }
        while i < len {
            if let Some(p) = self.at(hay, i, eof) {
                return Some(p);
            }
            i += 1;
        }
        None
    }

    /// Position `i` as a candidate, byte by byte.
    #[inline]
    fn at(&self, hay: &[u8], i: usize, eof: bool) -> Option<usize> {
        if !is_word(hay[i]) || !boundary_before(hay, i) {
            return None;
        }
        match hay.get(i + 1) {
            Some(_) if self.maybe(hay, i) => Some(i),
            Some(_) => None,
            None if !eof && self.lists.iter().any(|(p, _)| (*p >> 8) as u8 == hay[i]) => Some(i),
            None => None,
        }
    }

    /// Confirms the anchors starting with the bytes at `at`, longest first; the first that is
    /// not a plain no decides. Returns the rule with it.
    pub(crate) fn confirm(
        &self,
        hay: &[u8],
        at: usize,
        lo: usize,
        eof: bool,
    ) -> (Confirm, Option<usize>) {
        let Some(&b1) = hay.get(at + 1) else {
            return (super::detect::out_of_data(eof, at), None);
        };
        let pair = u16::from(hay[at]) << 8 | u16::from(b1);
        let Ok(k) = self.lists.binary_search_by_key(&pair, |(p, _)| *p) else {
            return (Confirm::No, None);
        };
        for &(rule, anchor) in &self.lists[k].1 {
            let a = anchor.as_bytes();
            let have = &hay[at..hay.len().min(at + a.len())];
            if have.len() < a.len() {
                if !eof && a.starts_with(have) {
                    return (Confirm::NeedMore { from: at }, Some(rule));
                }
                continue;
            }
            if have != a {
                continue;
            }
            let c = rules::confirm(&RULES[rule], hay, at, a.len(), lo, eof);
            if c != Confirm::No {
                return (c, Some(rule));
            }
        }
        (Confirm::No, None)
    }
}

/// A hash of three bytes into 16 bits.
#[inline(always)]
fn hash3(b: &[u8]) -> usize {
    let v = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    (v.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// A hash of four bytes into 16 bits.
#[inline(always)]
fn hash4(b: &[u8]) -> usize {
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    (v.wrapping_mul(0x85EB_CA77) >> 16) as usize
}

/// The fewest bytes of a token the word-start search finds (its anchor and parts), checked by a
/// test for every such rule.
pub(crate) const MIN_TOKEN: usize = 16;
// The window test above doubles a run four times: 16 bytes.
const _: () = assert!(MIN_TOKEN == 16);

/// Whether `b` cannot be inside a token: it ends JSON strings, XML text, lists and escapes.
/// (The SSE2 windows compare these bytes directly.)
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "sse2", not(test)),
    allow(dead_code)
)]
#[inline]
pub(crate) fn stops_token(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b',' | b'\\' | b'\'')
}

/// Bit masks of a 64-byte window (bit `k` for byte `k`): ASCII word bytes, backslashes, bytes
/// that [stop a token](stops_token).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn word_classes(w: &[u8; 64]) -> (u64, u64, u64) {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i, m128i,
        move_mask_i8_m128i, set_splat_i8_m128i, sub_i8_m128i,
    };
    // `lo <= x < lo + n`: shift the range to start at -128, then one signed compare.
    let range = |v: m128i, lo: u8, n: u8| {
        let shifted = sub_i8_m128i(v, set_splat_i8_m128i(lo.wrapping_sub(128) as i8));
        cmp_lt_mask_i8_m128i(shifted, set_splat_i8_m128i((n as i8).wrapping_add(-128)))
    };
    let mut word = 0u64;
    let mut backslash = 0u64;
    let mut stop = 0u64;
    for q in 0..4 {
        let v = load_unaligned_m128i(w[q * 16..q * 16 + 16].try_into().expect("16 bytes"));
        // Letters: fold case by setting bit 0x20, then one range.
        let folded = bitor_m128i(v, set_splat_i8_m128i(0x20));
        let letter = range(folded, b'a', 26);
        let digit = range(v, b'0', 10);
        let under = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'_' as i8));
        let is_word = bitor_m128i(bitor_m128i(letter, digit), under);
        let bs = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
        let eq = |b: u8| cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b as i8));
        let stops = bitor_m128i(
            bitor_m128i(bs, eq(b'"')),
            bitor_m128i(eq(b'<'), bitor_m128i(eq(b','), eq(b'\''))),
        );
        let m = |x: m128i| u64::from(move_mask_i8_m128i(x) as u16) << (q * 16);
        word |= m(is_word);
        backslash |= m(bs);
        stop |= m(stops);
    }
    (word, backslash, stop)
}

/// Elsewhere: a byte at a time.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn word_classes(w: &[u8; 64]) -> (u64, u64, u64) {
    let mut word = 0u64;
    let mut backslash = 0u64;
    let mut stop = 0u64;
    for (k, &b) in w.iter().enumerate() {
        word |= u64::from(is_word(b)) << k;
        backslash |= u64::from(b == b'\\') << k;
        stop |= u64::from(stops_token(b)) << k;
    }
    (word, backslash, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windowed search finds what a byte-by-byte search finds.
    #[test]
    fn windows_agree_with_bytes() {
        let on = vec![true; RULES.len()];
        let w = WordAnchors::new(&on).unwrap();
        let text =
            "x sk-proj-aaaaaaaaaaaaaaaa \\nnpm_bbbbbbbbbbbbbbbbb \\u000ahvs.cccccccccccccccc \
            _npm_ 1npm_ é npm_ {\"a\":\"glpat-\"} pat. ghp dp.st.xxxxxxxxxxxxxxxxxxx"
                .repeat(40);
        let hay = text.as_bytes();
        let mut windowed = Vec::new();
        let mut p = 0;
        while let Some(q) = w.next(hay, p, true) {
            windowed.push(q);
            p = q + 1;
        }
        // Byte by byte, with the length rule the windows apply (the last bytes go byte by byte).
        let long_enough = |i: usize| {
            hay.len() - i < 122 || !hay[i..i + MIN_TOKEN].iter().any(|&b| stops_token(b))
        };
        let bytes: Vec<usize> = (0..hay.len())
            .filter(|&i| long_enough(i))
            .filter_map(|i| w.at(hay, i, true))
            .collect();
        // The windows may propose more (a superset); every byte-wise hit is among them and
        // each extra one is not a word start by the exact rule.
        for b in &bytes {
            assert!(windowed.contains(b), "missed {b}");
        }
        for x in &windowed {
            assert!(bytes.contains(x) || !boundary_before(hay, *x), "extra {x}");
        }
        assert!(bytes.len() > 100);
    }
}
