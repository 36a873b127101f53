//! The GNU build id of an ELF file (`NT_GNU_BUILD_ID` in a `PT_NOTE` segment), read with a few
//! small reads: the ELF header, the program headers and the note segments, never the whole
//! file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const PT_NOTE: u64 = 4;
const NT_GNU_BUILD_ID: u64 = 3;
/// Note segments larger than this are not read (build-id notes are tens of bytes).
const MAX_NOTE_SEGMENT: u64 = 64 * 1024;
const MAX_PROGRAM_HEADERS: u64 = 4096;

/// The build id of the ELF file at `path` as lowercase hex, or `None` when the file cannot be
/// read, is not ELF, or has no build-id note.
pub(crate) fn read_build_id(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let id = build_id(&mut file)?;
    (!id.is_empty()).then(|| id.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fixed-width fields of the ELF class and byte order of the file.
#[derive(Clone, Copy)]
struct Layout {
    is_64: bool,
    little: bool,
}

impl Layout {
    fn u16(self, b: &[u8], at: usize) -> Option<u64> {
        let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(u64::from(if self.little {
            u16::from_le_bytes(x)
        } else {
            u16::from_be_bytes(x)
        }))
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u64> {
        let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(u64::from(if self.little {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }))
    }

    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let x: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.little {
            u64::from_le_bytes(x)
        } else {
            u64::from_be_bytes(x)
        })
    }
}

fn read_at(file: &mut File, offset: u64, len: u64) -> Option<Vec<u8>> {
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = Vec::new();
    file.take(len).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 == len).then_some(buf)
}

fn build_id(file: &mut File) -> Option<Vec<u8>> {
    let header = read_at(file, 0, 64).or_else(|| read_at(file, 0, 52))?;
    if header.get(..4)? != b"\x7fELF" {
        return None;
    }
    let layout = Layout {
        is_64: *header.get(4)? == 2,
        little: *header.get(5)? == 1,
    };
    let (phoff, phentsize, phnum) = if layout.is_64 {
        (
            layout.u64(&header, 32)?,
            layout.u16(&header, 54)?,
            layout.u16(&header, 56)?,
        )
    } else {
        (
            layout.u32(&header, 28)?,
            layout.u16(&header, 42)?,
            layout.u16(&header, 44)?,
        )
    };
    let min_entry = if layout.is_64 { 56 } else { 32 };
    if phentsize < min_entry || phnum == 0 || phnum > MAX_PROGRAM_HEADERS {
        return None;
    }
    let table = read_at(file, phoff, phentsize * phnum)?;
    for i in 0..phnum {
        let at = usize::try_from(i * phentsize).ok()?;
        if layout.u32(&table, at)? != PT_NOTE {
            continue;
        }
        let (offset, size) = if layout.is_64 {
            (layout.u64(&table, at + 8)?, layout.u64(&table, at + 32)?)
        } else {
            (layout.u32(&table, at + 4)?, layout.u32(&table, at + 16)?)
        };
        if size == 0 || size > MAX_NOTE_SEGMENT {
            continue;
        }
        let Some(notes) = read_at(file, offset, size) else {
            continue;
        };
        if let Some(id) = find_note(layout, &notes) {
            return Some(id);
        }
    }
    None
}

/// Walks the notes of one segment: 4-byte fields namesz, descsz, type (in both ELF classes),
/// then the name and the descriptor, each padded to 4 bytes.
fn find_note(layout: Layout, notes: &[u8]) -> Option<Vec<u8>> {
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let namesz = usize::try_from(layout.u32(notes, at)?).ok()?;
        let descsz = usize::try_from(layout.u32(notes, at + 4)?).ok()?;
        let kind = layout.u32(notes, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align(namesz)?)?;
        let end = desc_at.checked_add(align(descsz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return notes.get(desc_at..desc_at + descsz).map(<[u8]>::to_vec);
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_build_id_of_this_test_binary_or_none() {
        // Rust binaries on Linux carry a GNU build id unless the linker was told otherwise;
        // either way the reader must not fail on a real ELF file.
        let exe = std::env::current_exe().ok();
        if let Some(id) = exe.as_deref().and_then(read_build_id) {
            assert!(
                id.len() >= 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
        }
        assert_eq!(read_build_id(Path::new("/nonexistent/file")), None);
    }

    #[test]
    fn finds_a_gnu_note() {
        let layout = Layout {
            is_64: true,
            little: true,
        };
        let mut notes = Vec::new();
        // An unrelated note first, then the build id.
        for (name, kind, desc) in [
            (&b"XYZ\0"[..], 1u32, &[9u8, 9, 9][..]),
            (&b"GNU\0"[..], 3, &[0xde, 0xad, 0xbe, 0xef][..]),
        ] {
            notes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&kind.to_le_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(desc);
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
        }
        assert_eq!(
            find_note(layout, &notes),
            Some(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(find_note(layout, &notes[..20]), None);
    }
}
