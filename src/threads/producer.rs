//! Thread mode, the pool thread's side: run one request's response through
//! the driver, handing what it produces to the event loop, past the
//! hand-off's window into the response's temp file (`spill.rs`), and wait
//! (without the GIL) while the client cannot take more and nothing may
//! spill.

use std::sync::Arc;

use ngx::ffi::{
    ngx_int_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, NGX_LOG_ERR, NGX_OK,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::handoff::{Handoff, Room};
use super::spill::Spiller;
use crate::config::{AppSpec, Spill};
use crate::errlog::{LogTo, LoopLog};
use crate::guard;
use crate::test_hooks::{Hook, Hooks};
use crate::vars::Vars;
use crate::wsgi::accel::IgnoreHeaders;
use crate::wsgi::driver::{End, Gone, Refused, Response, Sink, Start, Step};
use crate::wsgi::file_wrapper::FileBody;
use crate::wsgi::input::{self, RequestBody};
use crate::wsgi::kept::Kept;
use crate::wsgi::start_response::Head;
use crate::wsgi::watch::Watch;

/// A request for a pool thread: everything the app needs, owned, so that
/// the thread never touches nginx's request.
pub struct Job {
    pub handoff: Arc<Handoff>,
    pub vars: Vars,
    pub body: RequestBody,
    /// Index of the app in the main configuration.
    pub app: usize,
    /// The location's `wsgi_buffering`.
    pub buffering: bool,
    /// The location's `wsgi_ignore_headers`.
    pub ignore: IgnoreHeaders,
    /// The location's `wsgi_read_timeout` (ms).
    pub read_timeout: u64,
    /// Where the response may spill (`wsgi_max_temp_file_size` > 0).
    pub spill: Option<Arc<Spill>>,
    /// Test build: the location's hooks.
    pub test_hooks: Hooks,
}

/// Runs one request's app to its end on this pool thread, whose watch
/// (`wsgi_read_timeout`) is `watch`.
pub fn run(py: Python<'_>, job: Job, apps: &[AppSpec], watch: &'static Watch) {
    let handoff = job.handoff.clone();
    if !handoff.start() {
        return; // it waited too long, or the client left
    }
    // A timeout ends the request on the event loop at once.
    watch.set_target(Some(handoff.clone()));
    // Owned out here, so that a panic cannot drop the bytes nginx may still
    // send, and close() still runs after one.
    let mut kept = Kept::default();
    let mut response = None;
    let end = guard::catch(|| produce(py, job, apps, watch, &mut response, &mut kept))
        .unwrap_or_else(|panic| {
            handoff.log(NGX_LOG_ALERT as _, &guard::message("a pool thread", &panic));
            let head_sent = response.as_ref().is_some_and(Response::head_sent);
            End::Finalize(if head_sent {
                NGX_ERROR as _
            } else {
                NGX_HTTP_INTERNAL_SERVER_ERROR as _
            })
        });
    if let Some(response) = response.take() {
        response.release(py);
    }
    watch.set_target(None);
    // The bytes nginx may still send go with the hand-off.
    handoff.finish(end, kept);
}

/// Calls the app and hands its response over, chunk by chunk, as room is
/// made. The response lives in `slot` until it is released.
fn produce(
    py: Python<'_>,
    job: Job,
    apps: &[AppSpec],
    watch: &'static Watch,
    slot: &mut Option<Response>,
    kept: &mut Kept,
) -> End {
    let Job {
        handoff,
        vars,
        body,
        app,
        buffering,
        ignore,
        read_timeout,
        spill,
        test_hooks,
    } = job;
    let Some(spec) = apps.get(app) else {
        return End::Finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    };
    let start = Start {
        app,
        spec,
        vars: &vars,
        input: input::from_body(py, body, watch),
        log: LogTo::Loop(handoff.clone()),
        flush: handoff.clone(),
        multithread: true,
        buffering,
        ignore,
        watch,
        read_timeout,
    };
    handoff.app_called();
    if let Some(end) = Response::start(py, start, slot) {
        return end;
    }
    let Some(response) = slot.as_mut() else {
        return End::Finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    };
    let mut spiller = spill.map(|spill| Spiller::new(spill, test_hooks));
    loop {
        // Test build: the news may wait for the end, as when the loop is
        // slower than the app, so that all of it reaches the loop at once.
        let post = !test_hooks.armed(Hook::NewsWaitsForTheEnd);
        let can_spill = spiller.as_ref().is_some_and(Spiller::can_spill);
        if let Room::Stop = handoff.wait_for_room(py, kept, post, can_spill) {
            // The request is over: nobody reads this end.
            return End::Finalize(NGX_ERROR as _);
        }
        let mut sink = HandoffSink {
            handoff: &handoff,
            kept,
            spiller: spiller.as_mut(),
            test_hooks,
        };
        if let Step::End(end) = response.step(py, &mut sink) {
            return end;
        }
    }
}

/// The response goes to the event loop through the hand-off.
struct HandoffSink<'a> {
    handoff: &'a Handoff,
    kept: &'a mut Kept,
    spiller: Option<&'a mut Spiller>,
    test_hooks: Hooks,
}

impl HandoffSink<'_> {
    /// A chunk the window has no room for goes to the temp file, if the
    /// response may spill; false when it is to go in memory after all.
    fn spill(
        &mut self,
        chunk: &Bound<'_, PyBytes>,
        len: usize,
        flush: bool,
    ) -> Result<bool, Refused> {
        let Some(spiller) = self.spiller.as_deref_mut() else {
            return Ok(false);
        };
        if !spiller.can_spill() || !self.handoff.has_no_room() {
            return Ok(false);
        }
        match spiller.write(chunk.py(), &chunk.as_bytes()[..len]) {
            Ok(Some(spilled)) => {
                if self.handoff.hand_over_spilled(spilled, len, flush) {
                    self.kept.push_spilled();
                }
                Ok(true)
            }
            // Over wsgi_max_temp_file_size: from now on the thread waits.
            Ok(None) => Ok(false),
            Err(e) => {
                self.handoff.log(NGX_LOG_ERR as _, &e);
                Err(Refused::Failed)
            }
        }
    }
}

impl Sink for HandoffSink<'_> {
    fn head(&mut self, head: Head, known_length: Option<usize>) -> Result<(), ngx_int_t> {
        // The loop sends it before the first chunk; a header-only response
        // ends there, and this thread learns it at its next wait for room.
        self.handoff.hand_over_head(head, known_length);
        Ok(())
    }

    fn chunk(&mut self, chunk: Bound<'_, PyBytes>, len: usize, flush: bool) -> Result<(), Refused> {
        self.test_hooks.panic_if(Hook::PanicInPoolThread);
        if self.spill(&chunk, len, flush)? {
            return Ok(());
        }
        self.handoff.hand_over_chunk(&chunk, len, flush);
        self.kept.push(chunk.unbind());
        Ok(())
    }

    fn end(&mut self) -> Result<ngx_int_t, Gone> {
        // The loop sends the last buffer when it gets here.
        Ok(NGX_OK as _)
    }

    fn file_body(&mut self, file: FileBody) -> Result<ngx_int_t, Gone> {
        // The loop sends the file as the body's last buffer; the thread is
        // free at once, however slow the client.
        if self.handoff.hand_over_file(file) {
            self.kept.push_spilled(); // a chunk, in the count of those done
        }
        Ok(NGX_OK as _)
    }
}
