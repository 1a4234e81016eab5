//! The IDX reader never panics, whatever the bytes: random byte strings, valid files with
//! random damage, and damaged `.gz` files each give a value or an error, and any value it
//! returns is self-consistent (as many data bytes as its dimensions say).
//! `fuzz/fuzz_targets/idx.rs` drives the same parser with cargo fuzz.

use std::io::Write;

use bn_train::data::{IdxArray, encode_idx, parse_idx, read_idx};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;

/// What every successful parse must satisfy.
fn consistent(bytes: &[u8], rank: u8, array: &IdxArray) -> Result<(), TestCaseError> {
    prop_assert_eq!(array.dims.len(), rank as usize);
    let count = array
        .dims
        .iter()
        .try_fold(1_usize, |t, &d| t.checked_mul(d));
    prop_assert_eq!(count, Some(array.data.len()));
    let header = 4 + 4 * rank as usize;
    prop_assert_eq!(&bytes[header..], &array.data[..]);
    Ok(())
}

/// A valid IDX file of rank 1 to 3 with small dimensions.
fn valid_file() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop::collection::vec(0_usize..6, 1..=3).prop_flat_map(|dims| {
        let count = dims.iter().product::<usize>();
        prop::collection::vec(any::<u8>(), count)
            .prop_map(move |data| (dims.len() as u8, encode_idx(&dims, &data)))
    })
}

/// Damage: flip bytes, cut the end, or append bytes.
#[derive(Debug, Clone)]
enum Damage {
    Set(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        any::<usize>().prop_map(Damage::Truncate),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(Damage::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    match damage {
        Damage::Set(i, b) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] = *b;
        }
        Damage::Set(..) => {}
        Damage::Truncate(n) => bytes.truncate(n % (bytes.len() + 1)),
        Damage::Append(more) => bytes.extend_from_slice(more),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), rank in 0_u8..6) {
        if let Ok(array) = parse_idx(&bytes, rank) {
            consistent(&bytes, rank, &array)?;
        }
    }

    #[test]
    fn random_headers_never_panic(
        rank in 0_u8..=255,
        dims in prop::collection::vec(any::<u32>(), 0..8),
        tail in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = vec![0, 0, 0x08, rank];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(tail);
        if let Ok(array) = parse_idx(&bytes, rank) {
            consistent(&bytes, rank, &array)?;
        }
    }

    #[test]
    fn valid_files_parse_back_and_damaged_ones_never_panic(
        (rank, file) in valid_file(),
        damages in prop::collection::vec(damage(), 0..4),
    ) {
        let parsed = parse_idx(&file, rank).expect("a valid file parses");
        consistent(&file, rank, &parsed)?;
        let mut damaged = file.clone();
        for d in &damages {
            apply(&mut damaged, d);
        }
        if let Ok(array) = parse_idx(&damaged, rank) {
            consistent(&damaged, rank, &array)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn damaged_gz_files_give_an_error_naming_the_file_or_a_consistent_value(
        (rank, file) in valid_file(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&file).unwrap();
        let mut compressed = gz.finish().unwrap();
        for d in &damages {
            apply(&mut compressed, d);
        }
        let dir = std::env::temp_dir().join(format!("bn-idx-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("damaged-idx-ubyte.gz");
        std::fs::write(&path, &compressed).unwrap();
        match read_idx(&path, rank) {
            Ok(array) => prop_assert_eq!(array.dims.iter().product::<usize>(), array.data.len()),
            Err(err) => prop_assert!(err.to_string().contains("damaged-idx-ubyte.gz"), "{}", err),
        }
    }
}
