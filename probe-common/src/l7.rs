//! L7 matcher tables: the HTTP request-line DFA the kernel walks.
//!
//! One [`L7DfaTable`] holds the compiled form of one *set* of Cilium HTTP
//! rules (the `rules.http` list that applies to one endpoint, direction, peer
//! and port, after the policy engine's union and wildcarding). The agent
//! stores each table as the value of an `Array` map; the kernel does **one**
//! map lookup to get the whole table and then walks it with a bounded loop,
//! indexing inside the value only.
//!
//! # What is matched
//!
//! The input is the request-line prefix `METHOD SP request-target`, i.e. the
//! bytes of the request line up to but excluding the SP before `HTTP/1.x`
//! (for `GET /a?b=c HTTP/1.1` the input is `GET /a?b=c`). The query string is
//! part of the target. A table accepts the input iff at least one rule
//! accepts it; a rule accepts iff its `method` regex matches the whole method
//! and its `path` regex matches the whole request-target (RE2 semantics as
//! Cilium/Envoy apply them: full-string match, case-sensitive, no path
//! normalisation). An absent or empty method or path means "any". The SP
//! separating method and target must be the only SP in the input: the kernel
//! must fail closed on a request line whose target contains a SP, that does not
//! fit its capture window, or that does not start with a method token.
//!
//! Rules that also constrain `host`, `headers` or `headerMatches` cannot be
//! decided from the request line. The policy engine leaves such rules **out**
//! of the table (so a request they alone would allow is dropped: fail closed,
//! never a silent widening) and reports each one as "not enforceable in the
//! kernel" (`holonet policy validate` prints a warning; `holonet policy trace`
//! evaluates them fully in user space).
//!
//! # Layout
//!
//! All integers are little-endian host order (the table is produced and read
//! on the same machine). Offsets in bytes:
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic: u32` | [`L7_DFA_MAGIC`] |
//! | 4 | `version: u16` | [`L7_DFA_VERSION`] |
//! | 6 | `num_states: u16` | states in use, including the dead state 0 |
//! | 8 | `num_classes: u16` | byte classes in use (≤ [`L7_DFA_MAX_CLASSES`]) |
//! | 10 | `start_state: u16` | state before the first input byte |
//! | 12 | `num_rules: u16` | HTTP rules compiled into the table |
//! | 14 | `flags: u16` | [`L7_DFA_FLAG_MERGED`] or 0 |
//! | 16 | `byte_class: [u8; 256]` | input byte → class |
//! | 272 | `accept: [u16; L7_DFA_MAX_STATES]` | 0: state does not accept at end of input; `n > 0`: it accepts, and rule `n - 1` (the lowest-numbered accepting rule) matched; with [`L7_DFA_FLAG_MERGED`] every accepting state holds 1 and names no rule |
//! | 272 + 2·S | `transitions: [u16; S · C]` | next state **premultiplied** by C (`next * L7_DFA_MAX_CLASSES`), indexed `state * L7_DFA_MAX_CLASSES + class` |
//!
//! with S = [`L7_DFA_MAX_STATES`] and C = [`L7_DFA_MAX_CLASSES`]; the total is
//! [`L7_DFA_TABLE_SIZE`] bytes. Entries past `num_states` / `num_classes` are
//! zero (the dead state).
//!
//! State 0 is the **dead state**: every transition from it leads to 0 and it
//! never accepts, so a walk may stop as soon as it reaches 0 (verdict: no rule
//! matches). The start state is never 0 unless the table accepts nothing.
//!
//! # The walk (kernel and user space do exactly this)
//!
//! ```text
//! row = start_state * L7_DFA_MAX_CLASSES          (premultiplied state)
//! for each input byte b (at most the capture window, a constant bound):
//!     idx = row + byte_class[b]
//!     if idx >= L7_DFA_MAX_STATES * L7_DFA_MAX_CLASSES: fail closed (drop)
//!     row = transitions[idx]
//!     if row == 0: no match (drop)
//! matched_rule = accept[row / L7_DFA_MAX_CLASSES]   (0: drop with 403; n: allowed by rule n-1)
//! ```
//!
//! Transitions are stored premultiplied so the per-byte dependency chain is
//! one add and one load (S · C = 24,576 fits a `u16`).
//!
//! [`L7DfaTable::walk`] implements it; the policy engine tests it against the
//! `regex` crate and it is the reference for the eBPF implementation.
//!
//! # Limits
//!
//! [`L7_DFA_MAX_STATES`] × [`L7_DFA_MAX_CLASSES`] u16 transitions keep one
//! table at about 49 KiB, well under the kernel's map value limits. A rule set
//! whose minimised DFA needs more states or classes is rejected by the
//! compiler with an error naming the limit; it is never truncated.

/// Magic number at the start of every table (`"H7DF"` read as little-endian).
pub const L7_DFA_MAGIC: u32 = u32::from_le_bytes(*b"H7DF");

/// Version of the table layout described in this module.
pub const L7_DFA_VERSION: u16 = 1;

/// `flags` bit: the rules were compiled as one merged pattern because the
/// per-rule table (which names the matching rule) did not fit; `accept` then
/// only says "some rule matched" (1). Naming the rule per state splits states
/// (the seed's two rules need 93 states with names, 50 merged).
pub const L7_DFA_FLAG_MERGED: u16 = 1;

/// Maximum number of DFA states in one table, the dead state included.
pub const L7_DFA_MAX_STATES: usize = 384;

/// Maximum number of byte classes in one table (a power of two, so the index
/// `state * L7_DFA_MAX_CLASSES + class` is a shift and an or).
pub const L7_DFA_MAX_CLASSES: usize = 64;

/// Number of entries of [`L7DfaTable::transitions`].
pub const L7_DFA_TRANSITIONS: usize = L7_DFA_MAX_STATES * L7_DFA_MAX_CLASSES;

/// The dead state: no rule can match any more.
pub const L7_DFA_DEAD_STATE: u16 = 0;

/// Size in bytes of an [`L7DfaTable`].
pub const L7_DFA_TABLE_SIZE: usize = 16 + 256 + 2 * L7_DFA_MAX_STATES + 2 * L7_DFA_TRANSITIONS;

/// Longest input the user-space reference walk looks at; the kernel's own
/// bound is its capture window, which must not exceed this.
pub const L7_DFA_MAX_INPUT: usize = 4096;

/// A compiled HTTP rule set: a DFA over the request-line prefix (see the
/// module documentation for the exact format and the walk).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L7DfaTable {
    /// [`L7_DFA_MAGIC`].
    pub magic: u32,
    /// [`L7_DFA_VERSION`].
    pub version: u16,
    /// States in use (the dead state 0 included).
    pub num_states: u16,
    /// Byte classes in use.
    pub num_classes: u16,
    /// State before the first input byte.
    pub start_state: u16,
    /// Number of HTTP rules compiled into the table.
    pub num_rules: u16,
    /// Bit set of `L7_DFA_FLAG_*`.
    pub flags: u16,
    /// Input byte → byte class (each `< num_classes`).
    pub byte_class: [u8; 256],
    /// Per state: 0 if the state does not accept at end of input, else
    /// 1 + the index of the lowest-numbered rule that matched.
    pub accept: [u16; L7_DFA_MAX_STATES],
    /// Next state premultiplied by [`L7_DFA_MAX_CLASSES`], indexed
    /// `state * L7_DFA_MAX_CLASSES + class`.
    pub transitions: [u16; L7_DFA_TRANSITIONS],
}

const _: () = assert!(core::mem::size_of::<L7DfaTable>() == L7_DFA_TABLE_SIZE);
const _: () = assert!(L7_DFA_TABLE_SIZE <= 64 * 1024);
const _: () = assert!(L7_DFA_MAX_CLASSES.is_power_of_two());
const _: () = assert!(L7_DFA_MAX_CLASSES <= 256);
const _: () = assert!(L7_DFA_TRANSITIONS <= u16::MAX as usize + 1);
const _: () = assert!(core::mem::align_of::<L7DfaTable>() == 4);

impl L7DfaTable {
    /// A table whose every byte is zero (accepts nothing; magic not set).
    pub const fn zeroed() -> Self {
        Self {
            magic: 0,
            version: 0,
            num_states: 0,
            num_classes: 0,
            start_state: 0,
            num_rules: 0,
            flags: 0,
            byte_class: [0; 256],
            accept: [0; L7_DFA_MAX_STATES],
            transitions: [0; L7_DFA_TRANSITIONS],
        }
    }

    /// Walks the table over `input` (the request-line prefix) and returns 0
    /// when no rule matches, or 1 + the index of the matching rule.
    ///
    /// This is the reference walk: the kernel does the same steps. Any out of
    /// range index fails closed (returns 0). Input past
    /// [`L7_DFA_MAX_INPUT`] bytes fails closed too.
    pub fn walk(&self, input: &[u8]) -> u16 {
        self.walk_parts(&[input])
    }

    /// [`L7DfaTable::walk`] over the concatenation of `parts` (e.g. method,
    /// `b" "`, path) without building the concatenation.
    pub fn walk_parts(&self, parts: &[&[u8]]) -> u16 {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.magic != L7_DFA_MAGIC || total > L7_DFA_MAX_INPUT {
            return 0;
        }
        let mut row = self.start_state as usize * L7_DFA_MAX_CLASSES;
        for part in parts {
            for &b in *part {
                // The dead state loops on itself, so no early exit is needed
                // for correctness; the kernel may stop at 0 to save work.
                match self
                    .transitions
                    .get(row + self.byte_class[b as usize] as usize)
                {
                    Some(&next) => row = next as usize,
                    None => return 0,
                }
            }
        }
        match self.accept.get(row / L7_DFA_MAX_CLASSES) {
            Some(&a) => a,
            None => 0,
        }
    }
}

/// The kernel's HTTP head scanner's test of eight bytes at once (read
/// little-endian into `word`): may any of them change what it decides, being
/// a control character (CR, LF and tab included) or DEL? Exact when it
/// answers no, which lets the scanner step over the eight bytes; a yes may
/// be a false alarm, and the scanner then looks at them one by one.
pub fn has_special_head_byte(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20 borrows in the subtraction and has its high bit
    // clear in `!word` (bytes of 0x80 and above are ordinary).
    let below_space = word.wrapping_sub(0x20 * ONES) & !word & HIGHS;
    // A DEL byte becomes zero.
    let del = word ^ (0x7f * ONES);
    let is_del = del.wrapping_sub(ONES) & !del & HIGHS;
    below_space | is_del != 0
}

#[cfg(feature = "user")]
// SAFETY: `L7DfaTable` is `repr(C)`, made only of integers and integer arrays,
// with explicit padding and no implicit padding (its size is asserted above),
// so every bit pattern is a valid value.
unsafe impl aya::Pod for L7DfaTable {}

#[cfg(test)]
mod tests {
    use super::*;

    fn special(b: u8) -> bool {
        b < 0x20 || b == 0x7f
    }

    proptest::proptest! {
        /// Eight bytes with a control character or DEL among them are
        /// never stepped over.
        #[test]
        fn special_bytes_are_always_seen(bytes in proptest::array::uniform8(proptest::num::u8::ANY)) {
            if bytes.iter().copied().any(special) {
                proptest::prop_assert!(has_special_head_byte(u64::from_le_bytes(bytes)));
            }
        }

        /// Header text without them is stepped over.
        #[test]
        fn ordinary_text_is_stepped_over(bytes in proptest::array::uniform8(0x20u8..0x7f)) {
            proptest::prop_assert!(!has_special_head_byte(u64::from_le_bytes(bytes)));
        }
    }

    #[test]
    fn each_special_byte_in_each_position_is_seen() {
        for at in 0..8 {
            for b in (0u8..0x20).chain([0x7f]) {
                let mut bytes = *b"Host: co";
                bytes[at] = b;
                assert!(
                    has_special_head_byte(u64::from_le_bytes(bytes)),
                    "{b:#x} at {at}"
                );
            }
        }
        assert!(!has_special_head_byte(u64::from_le_bytes(
            *b"\x80\xff\xc3\xa9 /a?"
        )));
    }

    #[test]
    fn field_offsets_match_the_documented_layout() {
        let t = L7DfaTable::zeroed();
        let base = &t as *const _ as usize;
        assert_eq!(&t.byte_class as *const _ as usize - base, 16);
        assert_eq!(&t.accept as *const _ as usize - base, 272);
        assert_eq!(
            &t.transitions as *const _ as usize - base,
            272 + 2 * L7_DFA_MAX_STATES
        );
    }

    #[test]
    fn zeroed_table_accepts_nothing() {
        let t = L7DfaTable::zeroed();
        assert_eq!(t.walk(b"GET /"), 0);
    }

    #[test]
    fn hand_built_table_walks() {
        // Accepts exactly "ab": classes a=1, b=2, other=0.
        let mut t = L7DfaTable::zeroed();
        t.magic = L7_DFA_MAGIC;
        t.version = L7_DFA_VERSION;
        t.byte_class[b'a' as usize] = 1;
        t.byte_class[b'b' as usize] = 2;
        t.num_classes = 3;
        t.num_states = 4;
        t.start_state = 1;
        t.transitions[L7_DFA_MAX_CLASSES + 1] = 2 * L7_DFA_MAX_CLASSES as u16;
        t.transitions[2 * L7_DFA_MAX_CLASSES + 2] = 3 * L7_DFA_MAX_CLASSES as u16;
        t.accept[3] = 1;
        assert_eq!(t.walk(b"ab"), 1);
        assert_eq!(t.walk(b"a"), 0);
        assert_eq!(t.walk(b"abb"), 0);
        assert_eq!(t.walk(b""), 0);
    }
}
