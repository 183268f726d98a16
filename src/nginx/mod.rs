//! The event loop's side of a request, in nginx's terms: what it reads of
//! the request (`cgi`, `body`, `upload` as it arrives) and how it answers (`headers_out`, `output` with `file`,
//! `events`, or elsewhere: `redirect`; `status_page` for `wsgi_status`). Only the event-loop thread runs this code.

pub mod body;
pub mod cgi;
pub mod events;
pub mod file;
pub mod headers_out;
pub mod output;
pub mod redirect;
pub mod status_page;
pub mod upload;
