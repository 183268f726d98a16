//! What a request does next: the work of an entry point (the inline pump,
//! thread mode's relay) decides it, and `request::settle` carries it out,
//! the one place that arms events for a request and finalizes it.

use ngx::ffi::ngx_int_t;

use crate::wsgi::driver::End;
use crate::wsgi::start_response::Head;

/// Where a request goes from here, as an entry point's work decides it.
pub enum Next {
    /// Thread mode: wait in the pool's queue (its timer is armed).
    Queued,
    /// Go on as the request is: inline, nothing waits; in thread mode, the
    /// next wake-up from the app's thread brings more.
    Running,
    /// Give the event loop a turn, then continue.
    Yield,
    /// Wait until the client can take more.
    WaitForClient,
    /// Finalize the request with this code.
    Finish(ngx_int_t),
    /// The app's `X-Accel-Redirect`: nginx serves the request from there.
    Redirect(Box<Head>),
}

impl From<End> for Next {
    fn from(end: End) -> Next {
        match end {
            End::Complete(rc) | End::Finalize(rc) => Next::Finish(rc),
            End::Redirect(head) => Next::Redirect(head),
        }
    }
}
