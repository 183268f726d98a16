//! The module's checks of untrusted and app-supplied input, for the fuzz
//! targets under fuzz/ (cargo feature `fuzzing`): the functions the module
//! runs, re-exported, not copies.

pub use crate::asgi::websocket::{Event, FrameReader};
pub use crate::config::{max_requests, size, size_or_zero, Invalid};
pub use crate::config::{AppSource, AppSpec, PoolSpec};
pub use crate::nginx::cgi::{add_headers, mounted_path};
pub use crate::vars::{VarName, Vars};
pub use crate::wsgi::environ::cgi_name;
pub use crate::wsgi::start_response::Head;
