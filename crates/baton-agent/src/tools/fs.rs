use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::paths::Workspace;
use super::{trunc, ToolLimits};

const DEFAULT_LINES: usize = 2_000;
const MAX_LINE: usize = 2_000;

/// A regular file that is not binary (no NUL in its first 8 KiB), or why not.
pub(crate) fn text_file(path: &Path, shown: &str, limits: ToolLimits) -> Result<File, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read '{shown}': {e}"))?;
    if meta.is_dir() {
        return Err(format!("'{shown}' is a directory; use list_dir"));
    }
    if !meta.is_file() {
        return Err(format!("'{shown}' is not a regular file"));
    }
    if meta.len() > limits.max_file {
        return Err(format!(
            "'{shown}' is {} bytes, over the {} byte limit",
            meta.len(),
            limits.max_file
        ));
    }
    let mut f = File::open(path).map_err(|e| format!("cannot read '{shown}': {e}"))?;
    let mut head = [0u8; 8192];
    let n = f
        .read(&mut head)
        .map_err(|e| format!("cannot read '{shown}': {e}"))?;
    if head[..n].contains(&0) {
        return Err(format!("'{shown}' is a binary file"));
    }
    File::open(path).map_err(|e| format!("cannot read '{shown}': {e}"))
}

pub(crate) fn read_file(
    ws: &Workspace,
    raw: &str,
    offset: Option<usize>,
    limit: Option<usize>,
    limits: ToolLimits,
) -> Result<String, String> {
    let path = ws.resolve(raw).map_err(|e| e.to_string())?;
    let file = text_file(&path, raw, limits)?;
    let first = offset.unwrap_or(1);
    let count = limit.unwrap_or(DEFAULT_LINES);
    let mut out = String::new();
    let mut total = 0usize;
    let mut shown = 0usize;
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| format!("cannot read '{raw}': {e}"))?;
        total = i + 1;
        let n = i + 1;
        if n < first || shown >= count {
            continue;
        }
        if out.len() >= limits.read_output {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        let _ = writeln!(out, "{n:>6}\t{}", trunc(text, MAX_LINE));
        shown += 1;
    }
    if total == 0 {
        return Ok(format!("('{raw}' is empty)"));
    }
    if first > total {
        return Err(format!(
            "offset {first} is past the end: '{raw}' has {total} lines"
        ));
    }
    let last = first + shown - 1;
    if last < total || out.len() >= limits.read_output {
        let _ = write!(
            out,
            "\n(lines {first}-{last} of {total}; use offset to read on)"
        );
    }
    Ok(out)
}

pub(crate) fn list_dir(ws: &Workspace, raw: &str, limits: ToolLimits) -> Result<String, String> {
    let path = ws.resolve(raw).map_err(|e| e.to_string())?;
    if !path.is_dir() {
        return Err(format!("'{raw}' is not a directory"));
    }
    let mut entries: Vec<(String, String)> = Vec::new();
    for e in std::fs::read_dir(&path).map_err(|e| format!("cannot list '{raw}': {e}"))? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        let label = match e.file_type() {
            Ok(t) if t.is_dir() => format!("{name}/"),
            Ok(t) if t.is_symlink() => format!("{name} -> (link)"),
            Ok(t) if t.is_file() => {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                format!("{name}  ({size} bytes)")
            }
            _ => format!("{name}  (special)"),
        };
        entries.push((name, label));
    }
    entries.sort();
    let total = entries.len();
    let mut out: Vec<String> = entries
        .into_iter()
        .take(limits.list_entries)
        .map(|(_, l)| l)
        .collect();
    if total > limits.list_entries {
        out.push(format!(
            "({} more entries not shown)",
            total - limits.list_entries
        ));
    }
    if out.is_empty() {
        return Ok(format!("('{raw}' is empty)"));
    }
    Ok(out.join("\n"))
}

/// Writes `bytes` as the whole content of `path`, refusing a file with other hard links:
/// a link made inside the workspace to a file outside it (say `~/.ssh/authorized_keys`)
/// would otherwise be written through. The link count is read from the open handle, so
/// it is the file being written that was checked.
fn replace_contents(path: &std::path::Path, raw: &str, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let cannot = |e: std::io::Error| format!("cannot write '{raw}': {e}");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(format!(
                "'{raw}' has {} hard links; files with other hard links are not written, as \
                 another link may be outside the workspace",
                meta.nlink()
            ));
        }
    }
    if !meta.is_file() {
        return Err(format!("'{raw}' is not a regular file"));
    }
    file.set_len(0).map_err(cannot)?;
    file.write_all(bytes).map_err(cannot)
}

pub(crate) fn write_file(
    ws: &Workspace,
    raw: &str,
    content: &str,
    limits: ToolLimits,
) -> Result<String, String> {
    if content.len() > limits.write_content {
        return Err(format!(
            "content is {} bytes, over the {} byte limit",
            content.len(),
            limits.write_content
        ));
    }
    let path = ws.resolve_for_write(raw).map_err(|e| e.to_string())?;
    if path.is_dir() {
        return Err(format!("'{raw}' is a directory"));
    }
    if path.exists() && !path.is_file() {
        return Err(format!("'{raw}' is not a regular file"));
    }
    replace_contents(&path, raw, content.as_bytes())?;
    Ok(format!(
        "wrote {} bytes to {}",
        content.len(),
        ws.relative(&path)
    ))
}

pub(crate) fn edit_file(
    ws: &Workspace,
    raw: &str,
    old: &str,
    new: &str,
    limits: ToolLimits,
) -> Result<String, String> {
    if old.is_empty() {
        return Err("'old' must not be empty".into());
    }
    let path = ws.resolve(raw).map_err(|e| e.to_string())?;
    let mut file = text_file(&path, raw, limits)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|_| format!("'{raw}' is not UTF-8 text"))?;
    match text.matches(old).count() {
        0 => Err(format!("'old' does not occur in '{raw}'")),
        1 => {
            let updated = text.replacen(old, new, 1);
            if updated.len() > limits.write_content.max(text.len()) {
                return Err("the edited file would be over the size limit".into());
            }
            replace_contents(&path, raw, updated.as_bytes())?;
            Ok(format!("edited {}", ws.relative(&path)))
        }
        n => Err(format!("'old' occurs {n} times in '{raw}'; make it unique")),
    }
}
