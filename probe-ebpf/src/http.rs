//! HTTP/1.x request heads, judged from a copy of the bytes where a request
//! starts: is it a request line, does the rule set's DFA accept it, and
//! where does the request end (its head plus a `Content-Length` body), so
//! the next request on the connection is found and checked too.
//!
//! Everything here works on a per-CPU buffer the caller filled; nothing
//! reads the packet. Whatever the probe cannot follow with confidence is
//! reported as a [`l7_detail`] code and the segment is dropped (fail closed):
//! a head that does not end within [`HEAD_WINDOW`] bytes or within the
//! segment, `Transfer-Encoding`, several or malformed `Content-Length`
//! headers, bare CR or LF line ends, control characters.

use aya_ebpf::{cty::c_void, helpers::bpf_loop};
use probe_common::{
    event::l7_detail,
    l7::{L7_DFA_MAX_CLASSES, L7DfaTable, has_special_head_byte},
};

macro_rules! get {
    ($st:ident . $field:ident) => {
        // SAFETY: `$st` points at a per-CPU map slot, valid and exclusively
        // ours for this program run.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*$st).$field)) }
    };
}

macro_rules! set {
    ($st:ident . $field:ident = $value:expr) => {{
        let value = $value;
        // SAFETY: as for `get!`.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*$st).$field), value) }
    }};
}

/// Bytes of a request the probe copies and reads: request line and headers
/// must end within them (a power of two, for the verifier's length mask).
pub(crate) const HEAD_WINDOW: usize = 2048;

/// Longest `METHOD SP request-target` walked through the DFA.
const REQUEST_LINE_MAX: usize = 256;

/// The shortest request we read: `GET / HTTP/1.1\r\n`.
pub(crate) const MIN_REQUEST: usize = 16;

/// Request bodies up to this many bytes are followed; a larger
/// `Content-Length` is refused (it would not fit the sequence arithmetic
/// with a safe margin).
const MAX_CONTENT_LENGTH: u32 = 1 << 30;

/// Does `head` start with an upper-case HTTP/1.x method and a space?
#[inline(always)]
pub(crate) fn is_method(head: &[u8; 8]) -> bool {
    matches!(
        head,
        [b'G', b'E', b'T', b' ', ..]
            | [b'P', b'U', b'T', b' ', ..]
            | [b'P', b'O', b'S', b'T', b' ', ..]
            | [b'H', b'E', b'A', b'D', b' ', ..]
            | [b'P', b'A', b'T', b'C', b'H', b' ', ..]
            | [b'T', b'R', b'A', b'C', b'E', b' ', ..]
            | [b'D', b'E', b'L', b'E', b'T', b'E', b' ', ..]
            | [b'O', b'P', b'T', b'I', b'O', b'N', b'S', b' ']
            | [b'C', b'O', b'N', b'N', b'E', b'C', b'T', b' ']
    )
}

/// Does `head` start an HTTP/1.x status line (`HTTP/1.0 ` or `HTTP/1.1 `)?
#[inline(always)]
pub(crate) fn is_status_line(head: &[u8; 8]) -> bool {
    matches!(
        head,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1']
    )
}

/// Values a `bpf_loop` walk carries from one step to the next and hands
/// back to its caller. They live in map memory (a per-CPU slot) on purpose:
/// verifiers before Linux 6.7 check a callback as if it ran once and would
/// take values kept on the caller's stack for constants, and prune the code
/// that depends on them.
#[repr(C)]
pub(crate) struct LoopVars {
    row: u64,
    count: u64,
    out: u64,
    /// Bytes a walk may read.
    limit: u64,
}

/// A field of [`LoopVars`].
#[derive(Clone, Copy)]
pub(crate) enum Var {
    Row,
    Count,
    Out,
}

/// Reads a [`LoopVars`] field (volatile: map memory shared with callbacks).
#[inline(always)]
pub(crate) fn take(vars: *mut LoopVars, var: Var) -> u64 {
    match var {
        Var::Row => get!(vars.row),
        Var::Count => get!(vars.count),
        Var::Out => get!(vars.out),
    }
}

/// Writes a [`LoopVars`] field.
#[inline(always)]
pub(crate) fn put(vars: *mut LoopVars, var: Var, value: u64) {
    match var {
        Var::Row => set!(vars.row = value),
        Var::Count => set!(vars.count = value),
        Var::Out => set!(vars.out = value),
    }
}

/// What [`walk_request_line`] hands its per-byte step through `bpf_loop`.
#[repr(C)]
struct WalkLoop {
    buf: *const [u8; HEAD_WINDOW],
    table: *const L7DfaTable,
    /// `row`: the premultiplied DFA state; `count`: spaces seen; `out`:
    /// `u64::MAX` while walking, the table's accept value once done.
    vars: *mut LoopVars,
}

/// Walks `table` over `METHOD SP request-target` at the start of `buf`
/// (`len` valid bytes). Returns the table's accept value for the walk: 0 when
/// no rule allows the request (or the line is not walkable: no second SP
/// within [`REQUEST_LINE_MAX`] bytes, CR or LF before it), `n > 0` when rule
/// `n - 1` allowed it. Runs under `bpf_loop`, like [`scan_head`].
#[inline(always)]
pub(crate) fn walk_request_line(
    table: *const L7DfaTable,
    buf: *const [u8; HEAD_WINDOW],
    len: usize,
    vars: *mut LoopVars,
) -> u16 {
    // SAFETY: `table` is a map value, valid for this program run.
    let start = unsafe { (*table).start_state };
    set!(vars.row = u64::from(start) * L7_DFA_MAX_CLASSES as u64);
    set!(vars.count = 0);
    set!(vars.out = u64::MAX);
    let mut state = WalkLoop { buf, table, vars };
    let limit = if len < REQUEST_LINE_MAX {
        len
    } else {
        REQUEST_LINE_MAX
    };
    set!(vars.limit = limit as u64);
    // SAFETY: `walk_step` has the callback signature `bpf_loop` expects and
    // only dereferences the pointers in `state`, which outlives the call.
    let looped = unsafe {
        bpf_loop(
            limit.div_ceil(WALK_STRIDE) as u32,
            walk_step as *mut c_void,
            core::ptr::addr_of_mut!(state).cast(),
            0,
        )
    };
    let accept = get!(vars.out);
    if looped < 0 || accept > u64::from(u16::MAX) {
        return 0;
    }
    accept as u16
}

/// Bytes [`walk_step`] walks per call: fewer `bpf_loop` calls, each
/// verified once.
const WALK_STRIDE: usize = 4;

/// [`WALK_STRIDE`] bytes of [`walk_request_line`] (fewer at the limit): 0
/// to go on, 1 to stop with `out` set.
#[inline(never)]
unsafe extern "C" fn walk_step(index: u32, ctx: *mut c_void) -> i64 {
    let state = ctx.cast::<WalkLoop>();
    // SAFETY: `ctx` is the `WalkLoop` on `walk_request_line`'s stack; the
    // pointers in it are map values valid for this program run.
    let (buf, table, vars) = unsafe { (&*(*state).buf, &*(*state).table, (*state).vars) };
    let stop = move |accept: u16| {
        set!(vars.out = u64::from(accept));
        1
    };
    let limit = get!(vars.limit);
    let mut row = get!(vars.row);
    let first = index as usize * WALK_STRIDE;
    for at in first..first + WALK_STRIDE {
        if at as u64 >= limit {
            // Not a whole `METHOD SP target SP` within the limit.
            return stop(0);
        }
        // The mask changes nothing (`at` is below the limit, at most
        // `REQUEST_LINE_MAX`); it shows the verifier the bound on the very
        // register used for the access.
        let Some(&b) = buf.get(at & (HEAD_WINDOW - 1)) else {
            return stop(0);
        };
        if b == b' ' {
            let spaces = get!(vars.count) + 1;
            if spaces == 2 {
                let dfa_state = row as usize / L7_DFA_MAX_CLASSES;
                return stop(table.accept.get(dfa_state).copied().unwrap_or(0));
            }
            set!(vars.count = spaces);
        } else if b == b'\r' || b == b'\n' {
            return stop(0);
        }
        let idx = row as usize + usize::from(table.byte_class[usize::from(b)]);
        let Some(&next) = table.transitions.get(idx) else {
            return stop(0);
        };
        if next == 0 {
            return stop(0);
        }
        row = u64::from(next);
    }
    set!(vars.row = row);
    0
}

/// Header names whose framing meaning the scanner must know, lower case
/// with their colon.
const CONTENT_LENGTH: &[u8; 15] = b"content-length:";
const TRANSFER_ENCODING: &[u8; 18] = b"transfer-encoding:";

/// `HeadScan::name_match` bits: the current line may still be this header.
const MAYBE_CONTENT_LENGTH: u32 = 1;
const MAYBE_TRANSFER_ENCODING: u32 = 2;

/// The head scanner's state between bytes. It lives in map memory (a
/// per-CPU slot the caller passes) and is read and written through volatile
/// accesses: the verifier then sees unknown values instead of following
/// every combination of them through the byte loop, which would exceed its
/// instruction budget.
#[repr(C)]
pub(crate) struct HeadScan {
    /// Where the next step reads, and where the scan ends (the bytes
    /// copied, at most [`HEAD_WINDOW`]).
    pos: u32,
    end: u32,
    /// The byte before the current one.
    prev: u32,
    /// Index just after the last LF: where the current line starts.
    line_start: u32,
    /// Which framing header names the current line still matches
    /// (`MAYBE_*` bits).
    name_match: u32,
    /// A `Content-Length` header was seen.
    cl_seen: u32,
    /// Where its value starts.
    cl_from: u32,
    /// 0 before its digits, 1 in them, 2 after them, 3 not in a value.
    cl_phase: u32,
    /// Digits read, and the value so far.
    cl_digits: u32,
    cl: u32,
}

/// What [`scan_head`] hands its per-byte step through `bpf_loop`.
#[repr(C)]
struct ScanLoop {
    buf: *const [u8; HEAD_WINDOW],
    scan: *mut HeadScan,
    /// `out`: 0 while scanning, the result once the step found one.
    vars: *mut LoopVars,
}

/// Where a request whose head starts at `buf[0]` (`len` valid bytes) ends.
///
/// Returns `head_len << 8 | content_length << 32` when the head (request
/// line, headers, empty line) ends within `len` bytes and its framing is one
/// the probe follows, or an [`l7_detail`] code (low byte, nonzero) when not.
/// `scan` is scratch space (see [`HeadScan`]).
///
/// The byte loop runs under `bpf_loop` (kernel 5.17+): its step is verified
/// once, where a plain loop of [`HEAD_WINDOW`] branchy iterations exceeds the
/// verifier's instruction budget. A step takes eight bytes at once where
/// none of them can matter (see [`scan_step`]), one byte otherwise, so the
/// loop's count (one step per byte) is an upper bound.
#[inline(always)]
pub(crate) fn scan_head(
    buf: *const [u8; HEAD_WINDOW],
    len: usize,
    scan: *mut HeadScan,
    vars: *mut LoopVars,
) -> u64 {
    let limit = if len < HEAD_WINDOW { len } else { HEAD_WINDOW };
    set!(scan.pos = 0);
    set!(scan.end = limit as u32);
    set!(scan.prev = 0);
    set!(scan.line_start = 0);
    set!(scan.name_match = 0);
    set!(scan.cl_seen = 0);
    set!(scan.cl_from = 0);
    set!(scan.cl_phase = 3);
    set!(scan.cl_digits = 0);
    set!(scan.cl = 0);
    let mut state = ScanLoop { buf, scan, vars };
    set!(vars.out = 0);
    // SAFETY: `scan_step` has the callback signature `bpf_loop` expects and
    // only dereferences the pointers in `state`, which outlives the call.
    let looped = unsafe {
        bpf_loop(
            limit as u32,
            scan_step as *mut c_void,
            core::ptr::addr_of_mut!(state).cast(),
            0,
        )
    };
    let result = get!(vars.out);
    if looped < 0 || result == 0 {
        return u64::from(l7_detail::HEAD_INCOMPLETE);
    }
    result
}

/// One step of [`scan_head`]: eight bytes where none can change the scan's
/// state (no header name being matched, no `Content-Length` value being
/// read, no CR before them, none of them special), else one byte. Returns 0
/// to go on, 1 to stop with `result` set.
#[inline(never)]
unsafe extern "C" fn scan_step(_index: u32, ctx: *mut c_void) -> i64 {
    let state = ctx.cast::<ScanLoop>();
    // SAFETY: `ctx` is the `ScanLoop` on `scan_head`'s stack.
    let (buf, st, vars) = unsafe { ((*state).buf, (*state).scan, (*state).vars) };
    let stop = move |result: u64| {
        set!(vars.out = result);
        1
    };
    // SAFETY: `buf` is the per-CPU request copy, valid for this run.
    let buf = unsafe { &*buf };
    let index = get!(st.pos);
    let end = get!(st.end);
    if index >= end {
        return stop(u64::from(l7_detail::HEAD_INCOMPLETE));
    }
    let at = index as usize;
    if index + 8 <= end
        && get!(st.name_match) == 0
        && get!(st.cl_phase) == 3
        && get!(st.prev) != u32::from(b'\r')
        && let Some(chunk) = buf.get(at..at + 8)
        && let Ok(chunk) = <[u8; 8]>::try_from(chunk)
    {
        let word = u64::from_le_bytes(chunk);
        if !has_special_head_byte(word) {
            set!(st.prev = (word >> 56) as u32);
            set!(st.pos = index + 8);
            return 0;
        }
    }
    set!(st.pos = index + 1);
    let Some(&b) = buf.get(at) else {
        return stop(u64::from(l7_detail::HEAD_INCOMPLETE));
    };
    let prev = get!(st.prev) as u8;
    set!(st.prev = u32::from(b));
    if (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f {
        return stop(u64::from(l7_detail::FRAMING));
    }
    if prev == b'\r' && b != b'\n' {
        // A bare CR: servers disagree on what it means.
        return stop(u64::from(l7_detail::FRAMING));
    }
    let phase = get!(st.cl_phase);
    if phase < 3 && index >= get!(st.cl_from) {
        if b.is_ascii_digit() {
            let digits = get!(st.cl_digits);
            if phase == 2 || digits >= 9 {
                return stop(u64::from(l7_detail::FRAMING));
            }
            set!(st.cl = get!(st.cl) * 10 + u32::from(b - b'0'));
            set!(st.cl_digits = digits + 1);
            set!(st.cl_phase = 1);
        } else if b == b' ' || b == b'\t' {
            if phase == 1 {
                set!(st.cl_phase = 2);
            }
        } else if b == b'\r' && get!(st.cl_digits) > 0 {
            set!(st.cl_phase = 3);
        } else {
            return stop(u64::from(l7_detail::FRAMING));
        }
    }
    if b == b'\n' {
        if prev != b'\r' {
            // A bare LF ends a line for some servers and not for others.
            return stop(u64::from(l7_detail::FRAMING));
        }
        if index == get!(st.line_start) + 1 {
            // The empty line: the head ends here.
            let cl = get!(st.cl);
            if cl > MAX_CONTENT_LENGTH || get!(st.cl_phase) != 3 {
                return stop(u64::from(l7_detail::FRAMING));
            }
            return stop((u64::from(index) + 1) << 8 | u64::from(cl) << 32);
        }
        set!(st.line_start = index + 1);
        set!(st.name_match = MAYBE_CONTENT_LENGTH | MAYBE_TRANSFER_ENCODING);
        return 0;
    }
    let candidates = get!(st.name_match);
    if candidates != 0 {
        // Header names compare case-insensitively. OR-ing 0x20 lower-cases
        // letters; it also maps CR to `-`, but a CR not followed by LF was
        // refused above.
        let at = (index - get!(st.line_start)) as usize;
        let lower = b | 0x20;
        let mut still = 0;
        if candidates & MAYBE_CONTENT_LENGTH != 0 && CONTENT_LENGTH.get(at) == Some(&lower) {
            if at == CONTENT_LENGTH.len() - 1 {
                if get!(st.cl_seen) != 0 {
                    return stop(u64::from(l7_detail::FRAMING));
                }
                set!(st.cl_seen = 1);
                set!(st.cl_from = index + 1);
                set!(st.cl_phase = 0);
            } else {
                still |= MAYBE_CONTENT_LENGTH;
            }
        }
        if candidates & MAYBE_TRANSFER_ENCODING != 0 && TRANSFER_ENCODING.get(at) == Some(&lower) {
            if at == TRANSFER_ENCODING.len() - 1 {
                // Chunked (or any other coded) request bodies: not followed.
                return stop(u64::from(l7_detail::FRAMING));
            }
            still |= MAYBE_TRANSFER_ENCODING;
        }
        set!(st.name_match = still);
    }
    0
}
