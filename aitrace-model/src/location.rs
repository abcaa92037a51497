//! Source paths relative to the project root, as the viewer and editor plugin want.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parking_lot::RwLock;

/// The environment variable that overrides the project root.
pub const PROJECT_ROOT_ENV: &str = "AITRACE_PROJECT_ROOT";

static OVERRIDE: RwLock<Option<String>> = RwLock::new(None);
static DISCOVERED: OnceLock<Option<String>> = OnceLock::new();

/// Sets the folder that `file` paths are written relative to, like the
/// Python tool's workspace root. Wins over [`PROJECT_ROOT_ENV`] and discovery.
///
/// Without it the root is `AITRACE_PROJECT_ROOT` when set, else the nearest
/// folder above the current directory holding `.git` or a `Cargo.toml` with a
/// `[workspace]` table, else the nearest holding any `Cargo.toml`. Paths the
/// compiler already gives relative (the usual case inside a Cargo workspace)
/// are written as they are; absolute paths below the root lose the root.
pub fn set_project_root(root: impl AsRef<Path>) {
    let mut text = root.as_ref().to_string_lossy().into_owned();
    while text.len() > 1 && text.ends_with('/') {
        text.pop();
    }
    *OVERRIDE.write() = Some(text);
}

/// The project root in force, if one is known.
pub fn project_root() -> Option<PathBuf> {
    root_string().map(PathBuf::from)
}

fn root_string() -> Option<String> {
    if let Some(root) = OVERRIDE.read().clone() {
        return Some(root);
    }
    DISCOVERED.get_or_init(discover).clone()
}

fn discover() -> Option<String> {
    if let Some(root) = std::env::var_os(PROJECT_ROOT_ENV).filter(|v| !v.is_empty()) {
        return Some(root.to_string_lossy().trim_end_matches('/').to_owned());
    }
    let cwd = std::env::current_dir().ok()?;
    let mut nearest_manifest = None;
    for dir in cwd.ancestors() {
        if dir.join(".git").exists() {
            return Some(dir.to_string_lossy().into_owned());
        }
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file() {
            if std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("[workspace]")) {
                return Some(dir.to_string_lossy().into_owned());
            }
            nearest_manifest.get_or_insert_with(|| dir.to_string_lossy().into_owned());
        }
    }
    nearest_manifest
}

/// `file` as written on the wire: relative to the project root when it is below it.
pub fn display_path(file: &str) -> Cow<'_, str> {
    if !file.starts_with('/') {
        return Cow::Borrowed(file);
    }
    match root_string() {
        Some(root) => match file.strip_prefix(root.as_str()) {
            Some(rest) if rest.starts_with('/') => Cow::Owned(rest[1..].to_owned()),
            _ => Cow::Borrowed(file),
        },
        None => Cow::Borrowed(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_below_the_root_become_relative() {
        set_project_root("/home/me/shop/");
        assert_eq!(display_path("/home/me/shop/src/main.rs"), "src/main.rs");
        assert_eq!(
            display_path("/home/me/shopping/src/main.rs"),
            "/home/me/shopping/src/main.rs"
        );
        assert_eq!(display_path("examples/checkout.rs"), "examples/checkout.rs");
        assert_eq!(project_root(), Some(PathBuf::from("/home/me/shop")));
    }
}
