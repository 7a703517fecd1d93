//! The web client: `static/` compiled into the binary, or a folder given with
//! `--static DIR`, served at `/` and `/<file>`.
//!
//! A URL path is percent-decoded, then refused if any segment could climb out
//! of the folder (`..`, `.`, empty segments, backslashes, NUL) or starts
//! with a dot (`/.env`, `/.git/config`: files an operator never meant to
//! publish). A file from `--static` is also resolved through symlinks and
//! must still lie inside the folder, under no dot-named name. Anything else
//! is 404.

use std::fs::File;
use std::path::{Path, PathBuf};

use log::warn;
use percent_encoding::percent_decode_str;
use sse_hub_tiny_http::{Method, Request, Response};

use super::Context;
use super::reply::{Refusal, add_headers};
use super::route::{method_not_allowed, path_of};

/// The copy of `static/` inside the binary.
const BUILT_IN: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../static/index.html")),
    ("app.js", include_bytes!("../../static/app.js")),
    ("style.css", include_bytes!("../../static/style.css")),
    ("favicon.svg", include_bytes!("../../static/favicon.svg")),
    ("sse-hub.js", include_bytes!("../../static/sse-hub.js")),
];

/// Where the web client comes from.
pub(crate) struct Assets {
    /// The `--static` folder, canonical; `None` serves the built-in copy.
    dir: Option<PathBuf>,
}

impl Assets {
    pub(crate) fn new(dir: Option<PathBuf>) -> Assets {
        let dir = dir.and_then(|dir| match dir.canonicalize() {
            Ok(dir) => Some(dir),
            Err(e) => {
                warn!(
                    "--static {}: {e}; serving the built-in web client",
                    dir.display()
                );
                None
            }
        });
        Assets { dir }
    }
}

/// Serves a web client file, or 404.
#[inline(never)]
pub(super) fn serve(ctx: &Context, request: Request) {
    if !matches!(request.method(), Method::Get | Method::Head) {
        return method_not_allowed(ctx, request, "GET, HEAD, OPTIONS");
    }
    let Some(name) = file_name(path_of(request.url())) else {
        return not_found(ctx, request);
    };
    let mut response = match &ctx.assets.dir {
        None => match BUILT_IN.iter().find(|(built_in, _)| *built_in == name) {
            Some((_, bytes)) => Response::from_data(*bytes).boxed(),
            None => return not_found(ctx, request),
        },
        Some(root) => match open_inside(root, &name) {
            Some(file) => Response::from_file(file).boxed(),
            None => return not_found(ctx, request),
        },
    };
    add_headers(
        &mut response,
        &[
            ("Content-Type", content_type(&name)),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            (
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
    );
    ctx.replies.respond(request, response);
}

fn not_found(ctx: &Context, request: Request) {
    let path = path_of(request.url()).to_owned();
    ctx.replies.refuse(request, &Refusal::NotFound(path));
}

/// The file a URL path names, relative to the web client's folder; `None` if
/// the path could name anything outside it.
///
/// # Security
///
/// Decoding comes first, so `%2e%2e` and `%2f` are seen as `..` and `/`.
fn file_name(url_path: &str) -> Option<String> {
    let decoded = percent_decode_str(url_path).decode_utf8().ok()?;
    let relative = decoded.strip_prefix('/')?;
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let safe = relative
        .split('/')
        .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
        && !relative.contains(['\\', '\0']);
    safe.then_some(relative)
}

/// Opens `name` under `root`, if it is a regular file that really lies inside
/// `root` once symlinks are resolved.
fn open_inside(root: &Path, name: &str) -> Option<File> {
    let path = root.join(name).canonicalize().ok()?;
    let hidden = |relative: &Path| {
        relative
            .components()
            .any(|part| part.as_os_str().as_encoded_bytes().starts_with(b"."))
    };
    if !path
        .strip_prefix(root)
        .is_ok_and(|relative| !hidden(relative))
        || !path.is_file()
    {
        return None;
    }
    File::open(path).ok()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_index() {
        assert_eq!(file_name("/").as_deref(), Some("index.html"));
        assert_eq!(file_name("/app.js").as_deref(), Some("app.js"));
        assert_eq!(file_name("/docs/").as_deref(), Some("docs/index.html"));
    }

    #[test]
    fn nothing_can_climb_out() {
        for hostile in [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/../../x",
            "//etc/passwd",
            "/./app.js",
            "/a%5c..%5cx",
            "/a%00.js",
            "/%ff",
            "relative",
            "/.env",
            "/.git/config",
            "/%2egit/config",
            "/docs/.hidden/index.html",
            "/.well-known/",
        ] {
            assert_eq!(file_name(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn types_follow_extensions() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x.bin"), "application/octet-stream");
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_cannot_be_left_through_a_symlink() {
        let root = std::env::temp_dir().join(format!("sse-hub-assets-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("ok.txt"), "ok").unwrap();
        let outside = std::env::temp_dir().join(format!("sse-hub-outside-{}", std::process::id()));
        std::fs::write(&outside, "secret").unwrap();
        let _ = std::fs::remove_file(root.join("link.txt"));
        std::os::unix::fs::symlink(&outside, root.join("link.txt")).unwrap();

        std::fs::write(root.join(".secret"), "secret").unwrap();
        let _ = std::fs::remove_file(root.join("visible.txt"));
        std::os::unix::fs::symlink(root.join(".secret"), root.join("visible.txt")).unwrap();
        let root = root.canonicalize().unwrap();

        assert!(open_inside(&root, "ok.txt").is_some());
        assert!(open_inside(&root, "link.txt").is_none());
        assert!(
            open_inside(&root, "visible.txt").is_none(),
            "a dotfile by a symlink"
        );
        assert!(open_inside(&root, "missing.txt").is_none());
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_file(outside).unwrap();
    }
}
