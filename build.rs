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
}
