//! The IDX file format of MNIST (plain or gzip-compressed), with errors that name the file.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// An IDX file of unsigned bytes: its dimensions and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

const UBYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads an IDX file of unsigned bytes; gzip is detected from the content, not the name.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_file(path, format!("gzip data is corrupt: {e}")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|problem| Error::bad_file(path, problem))
}

/// Parses IDX bytes; the error says what is wrong.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "file is {} bytes, too short for an IDX header",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "wrong magic number {:02x}{:02x}{:02x}{:02x} (not an IDX file)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != UBYTE {
        return Err(format!(
            "element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        ));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        return Err("IDX header declares zero dimensions".into());
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format!(
            "truncated header: {ndims} dimensions need {header} bytes"
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("dimensions overflow")?;
    let body = bytes.len() - header;
    if body < expected {
        return Err(format!(
            "truncated: dimensions {dims:?} need {expected} data bytes, file has {body}"
        ));
    }
    if body > expected {
        return Err(format!(
            "{} bytes of trailing data after dimensions {dims:?}",
            body - expected
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IDX bytes for the given dimensions and data.
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    #[test]
    fn parses_a_small_file() {
        let a = parse_idx(&idx_bytes(
            &[2, 2, 3],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        ))
        .unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
    }

    #[test]
    fn reports_each_kind_of_bad_file() {
        let err = |b: &[u8]| parse_idx(b).unwrap_err();
        assert!(err(&[0, 0]).contains("too short"));
        assert!(err(&[1, 2, 8, 1, 0, 0, 0, 0]).contains("magic"));
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("element type"));
        assert!(err(&[0, 0, 8, 3, 0, 0]).contains("truncated header"));
        assert!(err(&idx_bytes(&[4], &[1, 2])).contains("truncated"));
        assert!(err(&idx_bytes(&[1], &[1, 2])).contains("trailing"));
    }

    #[test]
    fn reads_gzip_and_names_the_file_in_errors() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("ganem-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gz = dir.join("x.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&idx_bytes(&[3], &[7, 8, 9])).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_idx(&gz).unwrap().data, vec![7, 8, 9]);
        let bad = dir.join("bad-idx");
        std::fs::write(&bad, [9, 9, 9, 9]).unwrap();
        let msg = read_idx(&bad).unwrap_err().to_string();
        assert!(msg.contains("bad-idx") && msg.contains("magic"), "{msg}");
        let missing = read_idx(&dir.join("missing")).unwrap_err().to_string();
        assert!(missing.contains("missing"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
