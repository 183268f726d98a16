//! Variables for `log_format`, as nginx's upstream module has
//! `$upstream_response_time`: `$wsgi_app` (the `module:callable` that
//! answered), `$wsgi_queue_time` (how long the request waited for a pool
//! thread) and `$wsgi_app_time` (from calling the app to its response's
//! end), times in seconds with millisecond resolution. A request the
//! module did not answer, or a figure that does not apply (the queue of an
//! inline app), logs "-".

use std::time::Duration;

use ngx::ffi::{ngx_http_request_t, ngx_http_variable_value_t};
use ngx::http::HttpModuleMainConf;

use crate::config::Module;
use crate::nginx;
use crate::request::{self, Mode};

/// The variables, by name, with what each reports.
pub const VARIABLES: [(&str, Variable); 3] = [
    ("wsgi_app", Variable::App),
    ("wsgi_queue_time", Variable::QueueTime),
    ("wsgi_app_time", Variable::AppTime),
];

#[derive(Clone, Copy)]
pub enum Variable {
    App,
    QueueTime,
    AppTime,
}

impl Variable {
    /// The index `VARIABLES` has it at, as the handler's data.
    pub fn from_data(data: usize) -> Option<Variable> {
        VARIABLES.get(data).map(|(_, v)| *v)
    }
}

/// The value of `variable` for `r`, or None ("-").
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn value(r: *mut ngx_http_request_t, variable: Variable) -> Option<String> {
    let ctx = request::get(r)?;
    match variable {
        Variable::App => {
            let main = Module::main_conf(&*r)?;
            main.apps.get(ctx.app).map(|spec| spec.display())
        }
        Variable::QueueTime => match &ctx.mode {
            Mode::Thread(link) => link.times().0.map(seconds),
            Mode::Inline(_) | Mode::Asgi(_) => None,
        },
        Variable::AppTime => match &ctx.mode {
            Mode::Thread(link) => link.times().1.map(seconds),
            Mode::Inline(inline) => inline.app_time().map(seconds),
            Mode::Asgi(asgi) => asgi.as_ref().and_then(|a| a.app_time()).map(seconds),
        },
    }
}

/// As nginx writes `$upstream_response_time`: 0.302.
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Sets `v` to `value` (copied into the request pool), or to not found.
///
/// # Safety
/// `r` must be a live request, `v` the variable value nginx passed.
pub unsafe fn set(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    value: Option<String>,
) {
    let Some(value) = value else {
        (*v).set_not_found(1);
        return;
    };
    let Some(copy) = nginx::pool_str((*r).pool, value.as_bytes()) else {
        (*v).set_not_found(1);
        return;
    };
    (*v).data = copy.data;
    (*v).set_len(copy.len as _);
    (*v).set_valid(1);
    (*v).set_no_cacheable(0);
    (*v).set_not_found(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_nginx_writes_them() {
        assert_eq!(seconds(Duration::from_millis(302)), "0.302");
        assert_eq!(seconds(Duration::from_micros(12_345_678)), "12.345");
        assert_eq!(seconds(Duration::ZERO), "0.000");
    }
}
