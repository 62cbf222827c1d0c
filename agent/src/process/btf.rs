//! Field offsets of kernel structures, read from the kernel's BTF.
//!
//! The socket probe reads `struct sock` and `struct sk_buff` fields through
//! `bpf_probe_read_kernel`; their offsets change with the kernel version and
//! configuration, so they come from `/sys/kernel/btf/vmlinux` at start-up
//! rather than from headers. Only what that needs is parsed: the type
//! section's records, and struct/union members with their (bit) offsets,
//! looking through anonymous members and typedef/const/volatile wrappers.

use std::{collections::HashMap, path::Path};

use probe_common::process::SockLayout;

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_MIN: usize = 24;

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Why offsets could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The bytes are not BTF this parser understands.
    #[error("kernel BTF is malformed: {0}")]
    Malformed(String),
    /// A structure or member is not in the BTF.
    #[error("kernel BTF has no {0}")]
    Missing(String),
}

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name_off: u32,
    kind: u32,
    /// `size` for structs, the referenced type for typedefs and modifiers.
    size_or_type: u32,
    members: Vec<Member>,
}

/// The parsed type section: enough to look structure members up.
#[derive(Debug)]
pub struct Btf {
    strings: Vec<u8>,
    /// Index `i` holds type id `i + 1`.
    types: Vec<Type>,
    structs_by_name: HashMap<String, u32>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let end = self.at + 4;
        let raw = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| BtfError::Malformed(format!("type record cut at byte {}", self.at)))?;
        self.at = end;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    fn skip(&mut self, n: usize) -> Result<(), BtfError> {
        if self.at + n > self.bytes.len() {
            return Err(BtfError::Malformed(format!(
                "type record cut at byte {}",
                self.at
            )));
        }
        self.at += n;
        Ok(())
    }
}

fn header_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn from_kernel() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    /// Reads and parses a raw BTF file.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses raw (little-endian) BTF.
    pub fn parse(bytes: &[u8]) -> Result<Self, BtfError> {
        if bytes.len() < HEADER_MIN {
            return Err(BtfError::Malformed(format!(
                "{} bytes, shorter than a header",
                bytes.len()
            )));
        }
        let magic = u16::from_le_bytes([bytes[0], bytes[1]]);
        if magic != MAGIC {
            return Err(BtfError::Malformed(format!(
                "magic {magic:#06x}, expected {MAGIC:#06x} (little-endian BTF)"
            )));
        }
        let hdr_len = header_u32(bytes, 4) as usize;
        let section = |off: usize, len: usize, what: &str| {
            let start = hdr_len
                .checked_add(header_u32(bytes, off) as usize)
                .ok_or_else(|| BtfError::Malformed(format!("{what} offset overflows")))?;
            let len = header_u32(bytes, len) as usize;
            start
                .checked_add(len)
                .and_then(|end| bytes.get(start..end))
                .ok_or_else(|| BtfError::Malformed(format!("{what} section lies outside the file")))
        };
        let type_bytes = section(8, 12, "type")?;
        let strings = section(16, 20, "string")?.to_vec();
        let mut cursor = Cursor {
            bytes: type_bytes,
            at: 0,
        };
        let mut types = Vec::new();
        while cursor.at < type_bytes.len() {
            let name_off = cursor.u32()?;
            let info = cursor.u32()?;
            let size_or_type = cursor.u32()?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => cursor.skip(4)?,
                KIND_ARRAY => cursor.skip(12)?,
                KIND_STRUCT | KIND_UNION => {
                    for _ in 0..vlen {
                        let name_off = cursor.u32()?;
                        let type_id = cursor.u32()?;
                        let offset = cursor.u32()?;
                        let bit_offset = if kind_flag {
                            offset & 0x00ff_ffff
                        } else {
                            offset
                        };
                        members.push(Member {
                            name_off,
                            type_id,
                            bit_offset,
                        });
                    }
                }
                KIND_ENUM | KIND_FUNC_PROTO => cursor.skip(8 * vlen)?,
                KIND_DATASEC | KIND_ENUM64 => cursor.skip(12 * vlen)?,
                0 | 2 | 7 | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | 12 | 16
                | KIND_TYPE_TAG => {}
                other => {
                    return Err(BtfError::Malformed(format!(
                        "type {} has unknown kind {other}",
                        types.len() + 1
                    )));
                }
            }
            types.push(Type {
                name_off,
                kind,
                size_or_type,
                members,
            });
        }
        let mut btf = Self {
            strings,
            types,
            structs_by_name: HashMap::new(),
        };
        for (index, ty) in btf.types.iter().enumerate() {
            if ty.kind == KIND_STRUCT && !ty.members.is_empty() {
                let name = btf.name(ty.name_off).to_string();
                if !name.is_empty() {
                    btf.structs_by_name
                        .entry(name)
                        .or_insert(u32::try_from(index + 1).unwrap_or(u32::MAX));
                }
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let Some(rest) = self.strings.get(off as usize..) else {
            return "";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// Follows typedefs and modifiers to the type they stand for.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let ty = self.get(id)?;
            match ty.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = ty.size_or_type;
                }
                _ => return Some(ty),
            }
        }
        None
    }

    /// The bit offset of member `name` inside struct/union `ty`, looking
    /// into anonymous struct and union members.
    fn member_bits(&self, ty: &Type, name: &str, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        for member in &ty.members {
            let member_name = self.name(member.name_off);
            if member_name == name {
                return Some(member.bit_offset);
            }
            if member_name.is_empty() {
                let inner = self.resolve(member.type_id)?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                    && let Some(bits) = self.member_bits(inner, name, depth + 1)
                {
                    return Some(member.bit_offset + bits);
                }
            }
        }
        None
    }

    /// The byte offset of `member` (a direct or anonymous-nested member) in
    /// `struct structure`.
    pub fn offset_of(&self, structure: &str, member: &str) -> Result<u32, BtfError> {
        let id = self
            .structs_by_name
            .get(structure)
            .ok_or_else(|| BtfError::Missing(format!("struct {structure}")))?;
        let ty = self
            .get(*id)
            .ok_or_else(|| BtfError::Missing(format!("struct {structure}")))?;
        let bits = self
            .member_bits(ty, member, 0)
            .ok_or_else(|| BtfError::Missing(format!("member {member} in struct {structure}")))?;
        if bits % 8 != 0 {
            return Err(BtfError::Malformed(format!(
                "{structure}.{member} is a bitfield (bit offset {bits})"
            )));
        }
        Ok(bits / 8)
    }

    /// The offsets the socket probe reads.
    pub fn sock_layout(&self) -> Result<SockLayout, BtfError> {
        let common = self.offset_of("sock", "__sk_common")?;
        let field = |name: &str| Ok::<_, BtfError>(common + self.offset_of("sock_common", name)?);
        Ok(SockLayout {
            ready: 1,
            daddr: field("skc_daddr")?,
            rcv_saddr: field("skc_rcv_saddr")?,
            dport: field("skc_dport")?,
            num: field("skc_num")?,
            family: field("skc_family")?,
            state: field("skc_state")?,
            v6_daddr: field("skc_v6_daddr")?,
            v6_rcv_saddr: field("skc_v6_rcv_saddr")?,
            skb_sk: self.offset_of("sk_buff", "sk")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF bytes: `struct outer { int a; union { int b; struct { int
    /// c; int d; }; }; }` with the anonymous union at byte 8 and `d` at byte
    /// 4 of the inner struct.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0d\0".to_vec();
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            let at = strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap();
            u32::try_from(at + 1).unwrap()
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int
        push(&[off("int"), KIND_INT << 24, 4, 32]);
        // 2: struct { int c; int d; } (anonymous)
        push(&[0, (KIND_STRUCT << 24) | 2, 8]);
        push(&[off("c"), 1, 0, off("d"), 1, 32]);
        // 3: union { int b; struct 2; } (anonymous)
        push(&[0, (KIND_UNION << 24) | 2, 8]);
        push(&[off("b"), 1, 0, 0, 2, 0]);
        // 4: const union 3
        push(&[0, KIND_CONST << 24, 3]);
        // 5: struct outer { int a; const union; }
        push(&[off("outer"), (KIND_STRUCT << 24) | 2, 16]);
        push(&[off("a"), 1, 0, 0, 4, 64]);
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(types.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(types.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(strings.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn members_are_found_through_anonymous_unions_and_modifiers() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.offset_of("outer", "a").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "b").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "c").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "d").unwrap(), 12);
    }

    #[test]
    fn missing_names_and_structs_are_named() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(
            btf.offset_of("outer", "zz").unwrap_err().to_string(),
            "kernel BTF has no member zz in struct outer"
        );
        assert_eq!(
            btf.offset_of("sock", "x").unwrap_err().to_string(),
            "kernel BTF has no struct sock"
        );
    }

    #[test]
    fn truncated_or_foreign_bytes_are_refused_without_panicking() {
        let full = sample();
        for cut in 0..full.len() {
            let _ = Btf::parse(&full[..cut]);
        }
        assert!(Btf::parse(&full[..30]).is_err());
        let mut wrong = full.clone();
        wrong[0] = 0;
        assert!(
            Btf::parse(&wrong)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Btf::parse(&bytes);
        }
    }

    /// The running kernel's BTF has every field the probe reads, at the
    /// offsets that have held for years on x86_64 for the IPv4 part.
    #[test]
    fn the_running_kernel_describes_its_sockets() {
        if !Path::new(VMLINUX_BTF).exists() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but {VMLINUX_BTF} is missing"
            );
            eprintln!("SKIPPED: {VMLINUX_BTF} is missing on this machine");
            return;
        }
        let layout = Btf::from_kernel().unwrap().sock_layout().unwrap();
        assert_eq!(layout.daddr, 0);
        assert_eq!(layout.rcv_saddr, 4);
        assert_eq!(layout.dport, 12);
        assert_eq!(layout.num, 14);
        assert_eq!(layout.family, 16);
        assert_eq!(layout.state, 18);
        assert!(layout.v6_daddr > layout.state);
        assert!(layout.skb_sk > 0);
    }
}
