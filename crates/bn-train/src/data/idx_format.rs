//! The IDX byte format of (Fashion-)MNIST: a magic number naming the element type and rank,
//! big-endian dimension sizes, then the raw values. Plain `std`, no dependencies: the fuzz
//! target in `fuzz/` compiles this file on its own.

/// An IDX array of unsigned bytes (type code `0x08`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Parses IDX bytes; the error says what is wrong.
pub fn parse_idx(bytes: &[u8], rank: u8) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "{} bytes is too short for an IDX magic number",
            bytes.len()
        ));
    }
    let magic = &bytes[..4];
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != rank {
        return Err(format!(
            "magic number {:02x}{:02x}{:02x}{:02x} is not an unsigned-byte IDX array of rank \
             {rank} (expected 000008{rank:02x})",
            magic[0], magic[1], magic[2], magic[3]
        ));
    }
    let header = 4 + 4 * rank as usize;
    if bytes.len() < header {
        return Err(format!(
            "{} bytes is too short for an IDX header of rank {rank} ({header} bytes)",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1_usize, |total, &d| total.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} hold more values than memory can"))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(format!(
            "dimensions {dims:?} need {expected} bytes of data, the file has {} ({})",
            data.len(),
            if data.len() < expected {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Encodes an unsigned-byte IDX array (used to write test fixtures and subsets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_headers() {
        let bytes = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let parsed = parse_idx(&bytes, 2).unwrap();
        assert_eq!(parsed.dims, [2, 3]);
        assert_eq!(parsed.data, [1, 2, 3, 4, 5, 6]);
        assert!(
            parse_idx(&bytes, 1)
                .unwrap_err()
                .contains("magic number 00000802")
        );
        let truncated = &bytes[..bytes.len() - 1];
        assert!(parse_idx(truncated, 2).unwrap_err().contains("truncated"));
        let mut long = bytes.clone();
        long.push(0);
        assert!(parse_idx(&long, 2).unwrap_err().contains("trailing bytes"));
        assert!(parse_idx(&bytes[..5], 2).unwrap_err().contains("too short"));
        assert!(parse_idx(&bytes[..2], 2).unwrap_err().contains("too short"));
        // 2^32 - 1 to the fifth power overflows a 64-bit count.
        let mut huge = vec![0, 0, 0x08, 5];
        huge.extend([0xff; 20]);
        assert!(
            parse_idx(&huge, 5)
                .unwrap_err()
                .contains("more values than memory")
        );
    }
}
