//! Fashion-MNIST for machines without the Debian package: the four IDX files fetched from
//! their canonical URLs, each checked against its published SHA-256, written atomically, and
//! resumed where an interrupted download stopped.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Where Zalando Research serves Fashion-MNIST (the links of
/// <https://github.com/zalandoresearch/fashion-mnist#get-the-data>).
pub const CANONICAL_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// The four files and their SHA-256 digests, as published alongside the data set (and
/// checked by Keras, Flux and others): train images, train labels, test images, test labels.
const CANONICAL_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
];

/// No file of the data set is larger; a server that sends more is refused.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A file to fetch: its name under the base URL and in the data directory, and the SHA-256
/// of its bytes (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// `train-images-idx3-ubyte.gz`, ...
    pub name: String,
    /// The SHA-256 of the file, lower-case hex.
    pub sha256: String,
}

/// Where [`download`] fetches from: a base URL (`http://`, ending in `/`) and the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The URL every file name is appended to.
    pub base_url: String,
    /// The files, fetched in this order.
    pub files: Vec<RemoteFile>,
}

impl Source {
    /// Fashion-MNIST at [`CANONICAL_URL`] with the published digests.
    pub fn canonical() -> Self {
        Self {
            base_url: CANONICAL_URL.to_string(),
            files: CANONICAL_FILES
                .iter()
                .map(|(name, sha256)| RemoteFile {
                    name: name.to_string(),
                    sha256: sha256.to_string(),
                })
                .collect(),
        }
    }
}

/// Why a download failed. Nothing under a file's final name is ever incomplete or
/// unverified; a partial download stays as `NAME.part` for the next attempt to resume.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server could not be reached, answered with an error status, or the connection
    /// broke mid-file (the bytes received are kept in `NAME.part` and resumed next time).
    #[error("downloading {url}: {message}")]
    Http {
        /// The file's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The downloaded bytes are not the published file.
    #[error(
        "downloading {url}: the file's SHA-256 is {found}, the published one {expected}: \
         the bytes were corrupted on the way; the download was deleted, run --download again"
    )]
    Checksum {
        /// The file's URL.
        url: String,
        /// The published digest.
        expected: String,
        /// The digest of what arrived.
        found: String,
    },
    /// A file already in the data directory is not the published one.
    #[error(
        "{} is not the published file (SHA-256 {found}, expected {expected}); move it away \
         and run --download again",
        path.display()
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The published digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fetches every file of `source` that `dir` (created if missing) does not hold yet, and
/// returns the paths of all of them.
///
/// Each file is written to `NAME.part`; a `NAME.part` left by an interrupted download is
/// resumed with an HTTP range request (or restarted if the server ignores the range). The
/// complete file's SHA-256 must match the published one; then it is synced and renamed to
/// `NAME`. A file already present under `NAME` is checked against its digest and kept.
/// Progress goes to stderr: a running line on a terminal, every 25% elsewhere.
///
/// # Errors
/// A [`DownloadError`] naming the URL or file.
pub fn download(dir: &Path, source: &Source) -> Result<Vec<PathBuf>, DownloadError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // A whole file's budget: 26 MiB at 15 KiB/s; a stalled server errs after it.
        .timeout_recv_body(Some(Duration::from_secs(30 * 60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut paths = Vec::with_capacity(source.files.len());
    for file in &source.files {
        let path = dir.join(&file.name);
        if path.is_file() {
            let found = sha256_of(&path)?;
            if found != file.sha256 {
                return Err(DownloadError::Mismatch {
                    path,
                    expected: file.sha256.clone(),
                    found,
                });
            }
        } else {
            let url = format!("{}{}", source.base_url, file.name);
            fetch(&agent, &url, &path, &file.sha256)?;
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Downloads `url` into `path` through `path.part`, see [`download`].
fn fetch(agent: &ureq::Agent, url: &str, path: &Path, sha256: &str) -> Result<(), DownloadError> {
    let http = |message: String| DownloadError::Http {
        url: url.to_string(),
        message,
    };
    let part = part_path(path);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|err| http(err.to_string()))?;
    let status = response.status().as_u16();
    let (start, mut out) = match status {
        206 if have > 0 => {
            let out = OpenOptions::new().append(true).open(&part);
            (have, out.map_err(io(&part))?)
        }
        200 => (0, File::create(&part).map_err(io(&part))?),
        other => return Err(http(format!("the server answered HTTP {other}"))),
    };
    let total = response
        .body()
        .content_length()
        .map(|length| start + length);
    let mut progress = Progress::new(url, start, total);
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_FILE_BYTES)
        .reader();
    let mut buffer = vec![0; 1 << 16];
    let mut written = start;
    loop {
        let read = body.read(&mut buffer).map_err(|err| {
            http(format!(
                "the connection broke after {written} bytes ({err}); run --download again to \
                 resume"
            ))
        })?;
        if read == 0 {
            break;
        }
        out.write_all(&buffer[..read]).map_err(io(&part))?;
        written += read as u64;
        progress.update(written);
    }
    out.sync_all().map_err(io(&part))?;
    drop(out);
    progress.finish(written);
    let found = sha256_of(&part)?;
    if found != sha256 {
        std::fs::remove_file(&part).map_err(io(&part))?;
        return Err(DownloadError::Checksum {
            url: url.to_string(),
            expected: sha256.to_string(),
            found,
        });
    }
    std::fs::rename(&part, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// `path` with `.part` appended: where a download in progress lives.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// The SHA-256 of the file at `path`, lower-case hex.
fn sha256_of(path: &Path) -> Result<String, DownloadError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Progress on stderr: a line rewritten in place on a terminal, a line every 25% elsewhere.
struct Progress {
    name: String,
    total: Option<u64>,
    terminal: bool,
    next_quarter: u64,
}

impl Progress {
    fn new(url: &str, start: u64, total: Option<u64>) -> Self {
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        match start {
            0 => eprintln!("downloading {url}"),
            _ => eprintln!("resuming {url} at byte {start}"),
        }
        Self {
            name,
            total,
            terminal: std::io::stderr().is_terminal(),
            next_quarter: 1,
        }
    }

    fn line(&self, done: u64) -> String {
        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        match self.total {
            Some(total) => format!(
                "  {}: {:>3}% ({:.1} of {:.1} MiB)",
                self.name,
                done * 100 / total.max(1),
                mib(done),
                mib(total)
            ),
            None => format!("  {}: {:.1} MiB", self.name, mib(done)),
        }
    }

    fn update(&mut self, done: u64) {
        if self.terminal {
            eprint!("\r{}", self.line(done));
        } else if let Some(total) = self.total
            && self.next_quarter < 4
            && done * 4 >= total * self.next_quarter
        {
            eprintln!("{}", self.line(done));
            self.next_quarter += 1;
        }
    }

    fn finish(&self, done: u64) {
        if self.terminal {
            eprintln!("\r{}", self.line(done));
        } else {
            eprintln!("{}", self.line(done));
        }
    }
}
