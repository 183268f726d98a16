//! Request → CGI variables (`Vars`): what PEP 3333's environ takes from the
//! request, read from nginx's structures on the event loop.

use std::net::IpAddr;

use ngx::ffi::{
    ngx_array_t, ngx_connection_local_sockaddr, ngx_http_complex_value, ngx_http_complex_value_t,
    ngx_http_get_indexed_variable, ngx_http_request_t, ngx_inet_get_port, ngx_int_t,
    ngx_list_part_t, ngx_str_t, ngx_table_elt_t, ngx_uint_t, NGX_HTTP_SATISFY_ALL, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleServerConf, NgxHttpCoreModule};

use crate::config::{EnvironSources, Param};
use crate::vars::{Known, Vars};

/// # Safety
/// `s` must point at `len` readable bytes, or be empty.
pub unsafe fn bytes(s: &ngx_str_t) -> &[u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(s.data, s.len)
    }
}

/// Reads the CGI variables of `r` and its location's `wsgi_param`s.
/// `body_len`: the length of the body nginx has read; None for one the app
/// reads as it arrives, whose length is the client's Content-Length, if
/// it sent one.
///
/// # Safety
/// `r` must be a live main request; `params` from its location, `sources`
/// from its main configuration.
pub unsafe fn collect(
    r: *mut ngx_http_request_t,
    body_len: Option<usize>,
    params: &[Param],
    sources: &EnvironSources,
) -> Result<Vars, String> {
    let c = (*r).connection;
    let mut vars = Vars::reuse(!(*c).ssl.is_null());
    vars.set(Known::RequestMethod, bytes(&(*r).method_name));
    vars.set(Known::PathInfo, bytes(&(*r).uri));
    vars.set(Known::DocumentUri, bytes(&(*r).uri));
    vars.set(Known::QueryString, bytes(&(*r).args));
    vars.set(Known::RequestUri, bytes(&(*r).unparsed_uri));
    let protocol = bytes(&(*r).http_protocol);
    vars.set(
        Known::ServerProtocol,
        if protocol.is_empty() {
            b"HTTP/0.9"
        } else {
            protocol
        },
    );

    let hi = &(*r).headers_in;
    if !hi.content_type.is_null() {
        vars.set(Known::ContentType, bytes(&(*hi.content_type).value));
    }
    // What was read; for a body still on its way, what the client declared
    // (a chunked body's content_length_n is what nginx has decoded so far).
    let length = match body_len {
        Some(len) => (hi.content_length_n >= 0 || hi.chunked() != 0).then_some(len as u64),
        None if hi.chunked() != 0 => None,
        None => u64::try_from(hi.content_length_n).ok(),
    };
    if let Some(length) = length {
        vars.set_number(Known::ContentLength, length);
    }

    // SERVER_NAME: the server block's name, as uwsgi_params has it; a
    // catch-all server has none, then the Host the client asked for.
    let cscf = NgxHttpCoreModule::server_conf(&*r).ok_or("no server configuration")?;
    let server_name = bytes(&cscf.server_name);
    let server_name = if server_name.is_empty() || server_name == b"_" {
        bytes(&hi.server)
    } else {
        server_name
    };
    vars.set(Known::ServerName, server_name);
    let local = ngx_connection_local_sockaddr(c, std::ptr::null_mut(), 0) == 0;
    let local_port = if local {
        ngx_inet_get_port((*c).local_sockaddr)
    } else {
        0
    };
    let server_port = match local_port {
        // A unix socket has no port: give the scheme's, for URL building.
        0 if vars.https => 443,
        0 => 80,
        p => p,
    };
    vars.set_number(Known::ServerPort, server_port.into());
    vars.set(Known::RemoteAddr, bytes(&(*c).addr_text));
    vars.set_number(Known::RemotePort, ngx_inet_get_port((*c).sockaddr).into());
    if vars.https {
        vars.set(Known::Https, b"on");
    }
    // SERVER_ADDR and DOCUMENT_ROOT as $server_addr and $document_root,
    // read directly in the common cases (an IP address, a root without
    // variables): nginx's variables format and copy them each time.
    match local.then(|| ip_address((*c).local_sockaddr)).flatten() {
        Some(ip) => vars.set_address(Known::ServerAddr, ip),
        None => {
            if let Some(addr) = variable(r, sources.server_addr) {
                vars.set(Known::ServerAddr, addr);
            }
        }
    }
    let clcf = NgxHttpCoreModule::location_conf(&*r).ok_or("no location configuration")?;
    if clcf.root_lengths.is_null() {
        vars.set(Known::DocumentRoot, bytes(&clcf.root));
    } else if let Some(root) = variable(r, sources.document_root) {
        vars.set(Known::DocumentRoot, root);
    }
    if let Some(user) = authenticated_user(r, clcf.satisfy, sources) {
        vars.set(Known::RemoteUser, user);
        // $remote_user is the user of Basic credentials, nginx's only scheme.
        vars.set(Known::AuthType, b"Basic");
    }

    add_http_headers(
        &mut vars,
        &hi.headers.part,
        cscf.underscores_in_headers != 0,
    );
    apply_params(r, &mut vars, params)?;
    Ok(vars)
}

/// The IP address of a socket address; None for other families (a unix
/// socket), which nginx's own variables then describe.
///
/// # Safety
/// `sa` must point to a socket address of its family's size.
pub unsafe fn ip_address(sa: *const ngx::ffi::sockaddr) -> Option<IpAddr> {
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            // s_addr holds the address's bytes in network order.
            Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::from(sin6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

/// The value of the nginx variable with this index, if it has one.
///
/// # Safety
/// `r` must be a live request; `index` from ngx_http_get_variable_index.
unsafe fn variable<'a>(r: *mut ngx_http_request_t, index: ngx_uint_t) -> Option<&'a [u8]> {
    let v = ngx_http_get_indexed_variable(r, index);
    if v.is_null() || (*v).not_found() != 0 || (*v).valid() == 0 {
        return None;
    }
    Some(if (*v).len() == 0 {
        &[]
    } else {
        std::slice::from_raw_parts((*v).data, (*v).len() as usize)
    })
}

/// `$remote_user` when nginx checked it before the content phase: the
/// location has `auth_basic` or `auth_request` on, under `satisfy all` (the
/// default). Under `satisfy any` nginx may have let the request in on
/// another rule (`allow`) without looking at the credentials at all, so a
/// client could name any user: then there is none.
///
/// # Safety
/// `r` must be a live request; `satisfy` its location's, `sources` from
/// its main configuration.
unsafe fn authenticated_user<'a>(
    r: *mut ngx_http_request_t,
    satisfy: ngx_uint_t,
    sources: &EnvironSources,
) -> Option<&'a [u8]> {
    if satisfy != NGX_HTTP_SATISFY_ALL as ngx_uint_t {
        return None;
    }
    let checked = sources.auth_basic.is_some_and(|i| auth_basic_on(r, i))
        || sources.auth_request.is_some_and(|i| auth_request_on(r, i));
    if !checked {
        return None;
    }
    variable(r, sources.remote_user).filter(|user| !user.is_empty())
}

/// The location configuration of ngx_http_auth_basic_module, as its source
/// (`ngx_http_auth_basic_module.c`) declares it, unchanged since nginx 1.3.10.
#[repr(C)]
struct AuthBasicConf {
    realm: *mut ngx_http_complex_value_t,
    user_file: *mut ngx_http_complex_value_t,
}

/// The location configuration of ngx_http_auth_request_module
/// (`ngx_http_auth_request_module.c`, unchanged since nginx 1.5.4).
#[repr(C)]
struct AuthRequestConf {
    uri: ngx_str_t,
    vars: *mut ngx_array_t,
}

/// Whether `auth_basic` checks the requests of `r`'s location, as its
/// access handler decides: a realm and a user file, and a realm that is not
/// "off".
///
/// # Safety
/// `r` must be a live request; `index` the module's context index.
unsafe fn auth_basic_on(r: *mut ngx_http_request_t, index: ngx_uint_t) -> bool {
    let conf = *(*r).loc_conf.add(index) as *const AuthBasicConf;
    if conf.is_null() || (*conf).realm.is_null() || (*conf).user_file.is_null() {
        return false;
    }
    let mut realm = ngx_str_t::empty();
    ngx_http_complex_value(r, (*conf).realm, &mut realm) == NGX_OK as ngx_int_t
        && bytes(&realm) != b"off"
}

/// Whether `auth_request` checks the requests of `r`'s location ("off" and
/// unset leave its URI empty).
///
/// # Safety
/// As for `auth_basic_on`.
unsafe fn auth_request_on(r: *mut ngx_http_request_t, index: ngx_uint_t) -> bool {
    let conf = *(*r).loc_conf.add(index) as *const AuthRequestConf;
    !conf.is_null() && (*conf).uri.len != 0
}

/// Adds each request header (an `HTTP_*` variable). Content-Type and
/// Content-Length appear only as CONTENT_TYPE and CONTENT_LENGTH. A name
/// with "_" is passed only under `underscores_in_headers on`: otherwise
/// `X_User` could pose as `X-User`, which maps to the same key.
///
/// # Safety
/// `part` must be the first part of a live ngx_list_t of ngx_table_elt_t.
unsafe fn add_http_headers(vars: &mut Vars, part: *const ngx_list_part_t, underscores: bool) {
    let fields = HeaderFields {
        part,
        index: 0,
        _list: std::marker::PhantomData,
    };
    add_headers(vars, fields, underscores);
}

/// `add_http_headers` of (lower-case name, value) fields.
pub fn add_headers<'a>(
    vars: &mut Vars,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    underscores: bool,
) {
    vars.begin_headers();
    for (name, value) in fields {
        if (!underscores && name.contains(&b'_'))
            || name == b"content-type"
            || name == b"content-length"
        {
            continue;
        }
        vars.add_header(name, value);
    }
}

/// The header fields of request `r`, as (lower-case name, value), in order.
///
/// # Safety
/// `r` must be a live request, which outlives the iterator.
pub unsafe fn request_headers<'a>(
    r: *mut ngx_http_request_t,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    HeaderFields {
        part: &(*r).headers_in.headers.part,
        index: 0,
        _list: std::marker::PhantomData,
    }
}

/// The request's header fields, as (lower-case name, value), in order.
struct HeaderFields<'a> {
    part: *const ngx_list_part_t,
    index: usize,
    _list: std::marker::PhantomData<&'a ngx_table_elt_t>,
}

impl<'a> Iterator for HeaderFields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: `part` walks a live ngx_list_t of ngx_table_elt_t (see
        // add_http_headers), whose parts hold `nelts` elements each.
        unsafe {
            while !self.part.is_null() {
                let part = &*self.part;
                if self.index >= part.nelts {
                    self.part = part.next;
                    self.index = 0;
                    continue;
                }
                let h = &*(part.elts as *const ngx_table_elt_t).add(self.index);
                self.index += 1;
                if h.hash == 0 || h.lowcase_key.is_null() {
                    continue;
                }
                // nginx keeps a lower-case copy of every request header name.
                let name = std::slice::from_raw_parts(h.lowcase_key, h.key.len);
                return Some((name, bytes(&h.value)));
            }
            None
        }
    }
}

/// Adds the location's `wsgi_param`s, which override what the module set.
/// A `SCRIPT_NAME` (the prefix an app is mounted under) is cut from the
/// front of `PATH_INFO`, unless a `wsgi_param` sets `PATH_INFO` too.
///
/// # Safety
/// `r` must be a live request; `params` from its location's configuration.
unsafe fn apply_params(
    r: *mut ngx_http_request_t,
    vars: &mut Vars,
    params: &[Param],
) -> Result<(), String> {
    let mut script_name: Option<Vec<u8>> = None;
    let mut path_info_set = false;
    for param in params {
        let Some(mut value) = param_value(r, param)? else {
            continue;
        };
        match param.name.as_str() {
            "SCRIPT_NAME" => {
                // SCRIPT_NAME never ends in "/": the "/" starts PATH_INFO.
                while let [rest @ .., b'/'] = value {
                    value = rest;
                }
                script_name = Some(value.to_vec());
            }
            "PATH_INFO" => path_info_set = true,
            _ => {}
        }
        vars.add_param(&param.name, value);
    }
    if let (Some(prefix), false) = (script_name, path_info_set) {
        if let Some(rest) = mounted_path(bytes(&(*r).uri), &prefix) {
            vars.set(Known::PathInfo, rest);
        }
    }
    Ok(())
}

/// The value of `param` for request `r`; None for an empty value under
/// `if_not_empty`.
///
/// # Safety
/// `r` must be a live request; `param` from its location's configuration.
pub unsafe fn param_value<'a>(
    r: *mut ngx_http_request_t,
    param: &Param,
) -> Result<Option<&'a [u8]>, String> {
    let mut value = ngx_str_t::empty();
    if ngx_http_complex_value(r, param.value, &mut value) != NGX_OK as ngx_int_t {
        return Err(format!("evaluating the parameter {} failed", param.name));
    }
    // The value is in the request pool, which outlives the borrow.
    let value: &'a [u8] = if value.len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(value.data, value.len)
    };
    Ok((!param.if_not_empty || !value.is_empty()).then_some(value))
}

/// The part of `path` after the mount point `prefix`, if `path` is under it.
pub fn mounted_path<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::mounted_path;

    #[test]
    fn mount_points() {
        assert_eq!(mounted_path(b"/app/x/y", b"/app"), Some(&b"/x/y"[..]));
        assert_eq!(mounted_path(b"/app", b"/app"), Some(&b""[..]));
        assert_eq!(mounted_path(b"/application", b"/app"), None);
        assert_eq!(mounted_path(b"/other", b"/app"), None);
        assert_eq!(mounted_path(b"/x", b""), Some(&b"/x"[..]));
    }
}
