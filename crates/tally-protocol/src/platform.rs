//! One name for each operating system and CPU architecture, whatever a
//! client, a library or a User-Agent calls it: `darwin`, `Mac OS X` and
//! `macOS` are all `macos`, and `amd64`, `x64` and `x86_64` one arch, so
//! that the reports count each platform in one row.

/// The operating system family `name` means, in Tally's words (those of
/// Rust's `std::env::consts::OS`: "linux", "macos", "windows", "freebsd"
/// ...); a name it does not know, lowercased.
///
/// ```
/// use tally_protocol::platform::os;
/// assert_eq!(os("Mac OS X"), "macos");
/// assert_eq!(os("win32"), "windows");
/// assert_eq!(os("Linux"), "linux");
/// assert_eq!(os("Debian"), "linux");
/// assert_eq!(os("Plan9"), "plan9");
/// ```
pub fn os(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let known = match lower.as_str() {
        "darwin" | "mac os x" | "mac os" | "macos" | "osx" | "mac" => "macos",
        "win32" | "win64" | "windows" | "windows_nt" | "cygwin" | "mingw" => "windows",
        "gnu/linux" | "linux" => "linux",
        _ if is_linux_distribution(&lower) => "linux",
        "ios" | "iphone os" | "ipados" => "ios",
        _ => return lower,
    };
    known.to_owned()
}

/// Whether `name` (lowercase) names a Linux distribution, as libraries
/// that read `/etc/os-release` report the OS (posthog-rs says "Debian").
///
/// ```
/// assert!(tally_protocol::platform::is_linux_distribution("ubuntu"));
/// assert!(tally_protocol::platform::is_linux_distribution("debian gnu/linux"));
/// assert!(!tally_protocol::platform::is_linux_distribution("macos"));
/// ```
pub fn is_linux_distribution(name: &str) -> bool {
    const DISTRIBUTIONS: &[&str] = &[
        "debian",
        "ubuntu",
        "fedora",
        "arch",
        "arch linux",
        "archlinux",
        "alpine",
        "alpine linux",
        "centos",
        "centos linux",
        "red hat enterprise linux",
        "redhat",
        "rhel",
        "rocky",
        "rocky linux",
        "almalinux",
        "opensuse",
        "opensuse leap",
        "opensuse tumbleweed",
        "suse",
        "sles",
        "linux mint",
        "mint",
        "nixos",
        "amazon linux",
        "amazon",
        "gentoo",
        "manjaro",
        "pop!_os",
        "elementary os",
        "kali",
        "kali linux",
        "void",
        "raspbian",
        "oracle linux",
        "clear linux",
        "endeavouros",
        "garuda linux",
        "mageia",
        "solus",
    ];
    // os-release's NAME is often the distribution and then "GNU/Linux"
    // or "Linux" ("Debian GNU/Linux", "Arch Linux").
    DISTRIBUTIONS.contains(&name) || name.ends_with(" gnu/linux") || name.ends_with(" linux")
}

/// The CPU architecture `name` means, in Tally's words (those of Rust's
/// `std::env::consts::ARCH`: "x86_64", "aarch64", "x86", "arm" ...); a
/// name it does not know, lowercased.
///
/// ```
/// use tally_protocol::platform::arch;
/// assert_eq!(arch("amd64"), "x86_64");
/// assert_eq!(arch("x64"), "x86_64");
/// assert_eq!(arch("arm64"), "aarch64");
/// assert_eq!(arch("i686"), "x86");
/// ```
pub fn arch(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let known = match lower.as_str() {
        "x86_64" | "amd64" | "x64" | "x86-64" => "x86_64",
        "aarch64" | "arm64" | "armv8" => "aarch64",
        "x86" | "i386" | "i486" | "i586" | "i686" | "ia32" | "386" => "x86",
        "arm" | "armv7" | "armv7l" | "armv6l" | "armhf" => "arm",
        _ => return lower,
    };
    known.to_owned()
}
