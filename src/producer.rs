//! Thread mode, the pool thread's side: build the environ, call the app and
//! iterate its response, handing each chunk to the event loop and waiting
//! (without the GIL) while the client cannot take more.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ngx::ffi::{
    NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_WARN,
};
use pyo3::prelude::*;

use crate::call::{report_failure, BodyLimit, Call};
use crate::conf::AppSpec;
use crate::environ::{self, Extras};
use crate::errlog::{self, ErrorLog, LogTo};
use crate::flush::Flush;
use crate::handoff::{End, Handoff, Room};
use crate::input;
use crate::interp;
use crate::output::Kept;
use crate::pool::Job;

/// One request on a pool thread.
struct Producer<'py, 'k> {
    handoff: Arc<Handoff>,
    log: LogTo,
    errors: Bound<'py, ErrorLog>,
    flush: Bound<'py, Flush>,
    /// The bytes objects nginx's buffers may point into. Owned by `run`,
    /// so that a panic cannot drop them while nginx still sends them.
    kept: &'k mut Kept,
    /// The head was handed to the loop, which sends it before any chunk.
    head_sent: bool,
    limit: BodyLimit,
}

/// Runs one request's app to its end on this pool thread.
pub fn run(py: Python<'_>, job: Job, apps: &[AppSpec]) {
    let handoff = job.handoff.clone();
    if !handoff.start() {
        return; // it waited too long, or the client left
    }
    let log = LogTo::Loop(handoff.clone());
    let objects = Bound::new(py, ErrorLog::new(LogTo::Loop(handoff.clone())))
        .and_then(|errors| Ok((errors, Bound::new(py, Flush::threaded(handoff.clone()))?)));
    let (errors, flush) = match objects {
        Ok(objects) => objects,
        Err(e) => {
            let rc = report_failure(py, &e, &log, "wsgi: preparing the request failed", false);
            handoff.finish(End::Fail(rc), Kept::default());
            return;
        }
    };
    let mut kept = Kept::default();
    // The app's response lives out here too, so that close() still runs
    // after a panic.
    let mut call = None;
    let end = catch_unwind(AssertUnwindSafe(|| {
        let mut producer = Producer {
            handoff: handoff.clone(),
            log,
            errors: errors.clone(),
            flush: flush.clone(),
            kept: &mut kept,
            head_sent: false,
            limit: BodyLimit::default(),
        };
        match apps.get(job.app) {
            Some(spec) => producer.respond(py, spec, job, &mut call),
            None => End::Fail(NGX_HTTP_INTERNAL_SERVER_ERROR as _),
        }
    }))
    .unwrap_or_else(|_| {
        errlog::worker_log(
            NGX_LOG_ALERT as _,
            "wsgi: internal error (panic) on a pool thread; request aborted",
        );
        End::Fail(NGX_ERROR as _)
    });
    if let Some(mut call) = call.take() {
        call.close(py, &LogTo::Loop(handoff.clone()));
    }
    if let Ok(mut errors) = errors.try_borrow_mut() {
        errors.detach();
    }
    flush.get().detach();
    // The bytes nginx may still send go with the hand-off.
    handoff.finish(end, kept);
}

impl Producer<'_, '_> {
    /// Calls the app and hands its response over. The response is kept in
    /// `slot` until it is closed.
    fn respond(
        &mut self,
        py: Python<'_>,
        spec: &AppSpec,
        job: Job,
        slot: &mut Option<Call>,
    ) -> End {
        let app = match interp::app(py, job.app, spec) {
            Ok(app) => app,
            Err(e) => {
                let what = format!("wsgi: cannot load app \"{}\"", spec.display());
                return self.fail(py, &e, &what);
            }
        };
        let called = input::stream(py, job.body).and_then(|input| {
            let extras = Extras {
                input,
                errors: self.errors.clone().into_any(),
                flush: self.flush.clone().into_any(),
                multithread: true,
            };
            let environ = environ::build(py, &job.vars, extras)?;
            Call::start(py, &app, environ)
        });
        let call = match called {
            Ok(call) => slot.insert(call),
            Err(e) => {
                let what = format!("wsgi: app \"{}\" raised", spec.display());
                return self.fail(py, &e, &what);
            }
        };
        let end = match call.iterate(py) {
            Ok(()) => self.pump(py, call),
            Err(e) => {
                let what = format!("wsgi: app \"{}\" raised", spec.display());
                self.fail(py, &e, &what)
            }
        };
        call.close(py, &self.log);
        *slot = None;
        end
    }

    /// Hands the body to the loop chunk by chunk; the iterable is closed
    /// by the caller.
    fn pump(&mut self, py: Python<'_>, call: &mut Call) -> End {
        loop {
            if let Room::Stop = self.handoff.wait_for_room(py, self.kept) {
                return End::Complete; // the request is over; nobody reads this
            }
            let chunk = match call.next_chunk(py) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return self.fail(py, &e, "wsgi: the app's response iterable raised"),
            };
            if chunk.as_bytes().is_empty() {
                continue;
            }
            if !self.head_sent {
                if let Err(end) = self.send_head(py, call) {
                    return end;
                }
            }
            let (len, warning) = self.limit.admit(chunk.as_bytes().len());
            if let Some(warning) = warning {
                self.log.write(NGX_LOG_WARN as _, &warning);
            }
            if len > 0 {
                let flush = self.flush.get().take_pending();
                self.handoff.send_chunk(&chunk, len, flush);
                self.kept.push(chunk.unbind());
            }
            if self.limit.reached() {
                break; // the whole declared body is out: stop iterating
            }
        }
        if !self.head_sent {
            // Nothing was sent: the body is empty unless the app said otherwise.
            call.known_length.get_or_insert(0);
            if let Err(end) = self.send_head(py, call) {
                return end;
            }
        }
        if let Some(error) = self.limit.shortfall() {
            self.log.write(NGX_LOG_ERR as _, &error);
            return End::Fail(NGX_ERROR as _);
        }
        End::Complete
    }

    fn send_head(&mut self, py: Python<'_>, call: &Call) -> Result<(), End> {
        let head = call
            .take_head(py)
            .map_err(|e| self.fail(py, &e, "wsgi: the app broke the WSGI protocol"))?;
        self.limit = BodyLimit::new(head.content_length);
        self.handoff.send_head(head, call.known_length);
        self.head_sent = true;
        self.flush.get().header_sent();
        Ok(())
    }

    fn fail(&mut self, py: Python<'_>, err: &PyErr, what: &str) -> End {
        End::Fail(report_failure(py, err, &self.log, what, self.head_sent))
    }
}
