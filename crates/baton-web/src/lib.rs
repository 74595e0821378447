//! The web app's built files, compiled into the binary by `build.rs`.
#![forbid(unsafe_code)]

mod files {
    include!(concat!(env!("OUT_DIR"), "/files.rs"));
}

/// One built file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// Vite puts a content hash in every name under `/assets/`, so those never change.
    pub immutable: bool,
}

/// The file at `path` (for example `/assets/index-3f2a.js`), if the build has one.
pub fn file(path: &str) -> Option<Asset> {
    let i = files::FILES
        .binary_search_by(|(route, _)| (*route).cmp(path))
        .ok()?;
    let (route, bytes) = files::FILES[i];
    Some(Asset {
        bytes,
        content_type: content_type(route),
        immutable: route.starts_with("/assets/"),
    })
}

/// The app's page, served for every client-side route.
pub fn index() -> Asset {
    file("/index.html").expect("build.rs checks that index.html exists")
}

fn content_type(route: &str) -> &'static str {
    match route.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_assets_are_embedded() {
        let page = std::str::from_utf8(index().bytes).unwrap();
        assert!(page.contains("<div id=\"app\">"), "{page}");
        let script = page
            .split("src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a script tag");
        let js = file(script).expect("the page's script is embedded");
        assert!(js.immutable);
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert!(file("/assets/nope.js").is_none());
    }
}
