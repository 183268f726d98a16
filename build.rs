fn main() {
    // Link against the same libpython the module is built for and embed its
    // directory as rpath, so nginx workers load exactly that library.
    pyo3_build_config::add_libpython_rpath_link_args();
    // Workers start CPython with this interpreter as sys.executable unless a
    // virtualenv is configured.
    let config = pyo3_build_config::get();
    let python = config
        .executable()
        .map(str::to_owned)
        .unwrap_or_else(|| "python3".to_owned());
    println!("cargo:rustc-env=WSGI_BUILD_PYTHON={python}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    // wsgi_temp_path's default: a packager sets it, as nginx's configure
    // takes --http-uwsgi-temp-path (src/config/mod.rs).
    let temp_path = std::env::var("NGX_WSGI_TEMP_PATH").unwrap_or_else(|_| "wsgi_temp".to_owned());
    println!("cargo:rustc-env=WSGI_DEFAULT_TEMP_PATH={temp_path}");
    println!("cargo:rerun-if-env-changed=NGX_WSGI_TEMP_PATH");
    nginx_version_cfgs();
}

/// cfgs for what differs between the nginx versions the module builds
/// against (Debian 12's 1.22 and the vendored 1.28), from nginx-sys.
fn nginx_version_cfgs() {
    println!("cargo::rustc-check-cfg=cfg(nginx_header_chains)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version: u64 = std::env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // 1.23.0: repeated header fields are chained through ngx_table_elt_t's
    // `next` (before, some were arrays of pointers, such as Cache-Control).
    if version >= 1_023_000 {
        println!("cargo::rustc-cfg=nginx_header_chains");
    }
}
