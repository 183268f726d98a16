//! Thread mode, the event loop's side: queue the request for a pool thread,
//! pass what the thread hands over to nginx's output filters, tell the
//! thread how the output stands, feed a body the app reads as it arrives
//! (`wsgi_request_buffering off`), and watch the client and the queue's
//! timer while the app waits or runs. The loop never takes the GIL here.
//!
//! Chunks that arrived together go to the filters together, flushed after
//! the last: none waits for a later one (the app already produced them),
//! and a fast app's small chunks share one write.

use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_event_handler_pt, ngx_event_t, ngx_file_t,
    ngx_http_request_t, ngx_int_t, ngx_log_t, NGX_ERROR, NGX_HTTP_CLIENT_CLOSED_REQUEST,
    NGX_HTTP_GATEWAY_TIME_OUT, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE,
    NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_INFO,
};
use ngx::ngx_log_error;

use super::handoff::{ChunkData, Handoff, News};
use super::pool::{self, Refused};
use super::producer::Job;
use super::spill::SpillFile;
use super::wakeup;
use crate::config::{LocConf, MainConf};
use crate::errlog::log_client_gone;
use crate::next::Next;
use crate::nginx::output::{self, SharedOutput};
use crate::nginx::upload::{self, Pulled};
use crate::nginx::{self, body, cgi, headers_out};
use crate::status::{self, Counter};
use crate::vars::Vars;
use crate::wsgi::driver::End;
use crate::wsgi::input::RequestBody;
use crate::wsgi::start_response::Head;
use crate::wsgi::stream::{BodyFault, BodyStream};

/// What the request's context holds of a request whose app runs on a pool
/// thread.
pub struct Link {
    /// Index of the pool in the main configuration.
    pool: usize,
    handoff: Arc<Handoff>,
    /// wsgi_queue_timeout while queued.
    timer: ngx_event_t,
    /// The app failed after its head went out: the response is aborted
    /// once nginx has written what the app produced before (as inline).
    aborting: bool,
    /// `wsgi_request_buffering off`: the body on its way to the app, until
    /// all of it is in the stream (or it failed).
    body: Option<Arc<BodyStream>>,
    /// The response's temp file, as nginx's buffers name it (in the request
    /// pool), and the file, held open until the request ends.
    spill_file: Option<(Arc<SpillFile>, *mut ngx_file_t)>,
}

impl Link {
    pub fn new(r: *mut ngx_http_request_t, pool: usize) -> Link {
        Link {
            pool,
            handoff: Handoff::new(r, wakeup::post),
            // SAFETY: an all-zero ngx_event_t is nginx's unarmed event.
            timer: unsafe { std::mem::zeroed() },
            aborting: false,
            body: None,
            spill_file: None,
        }
    }

    /// The nginx file of the response's temp file `file` (made at its first
    /// range); None when the request pool has no memory for it.
    ///
    /// # Safety
    /// `r` must be the live request of this link.
    unsafe fn nginx_file(
        &mut self,
        r: *mut ngx_http_request_t,
        file: &Arc<SpillFile>,
    ) -> Option<*mut ngx_file_t> {
        if let Some((held, f)) = &self.spill_file {
            if Arc::ptr_eq(held, file) {
                return Some(*f);
            }
        }
        let f = nginx::file::in_request_pool(r, file.fd(), file.path.as_os_str().as_bytes())?;
        self.spill_file = Some((file.clone(), f));
        Some(f)
    }

    /// How long the request waited for a thread (so far, while it waits),
    /// and how long its app has run: from its call to its end (so far).
    pub fn times(&self) -> (Option<Duration>, Option<Duration>) {
        let times = self.handoff.times();
        let now = Instant::now();
        let queue = times
            .queued
            .map(|q| times.left_queue.unwrap_or(now).saturating_duration_since(q));
        let app = times
            .app_called
            .map(|c| times.app_done.unwrap_or(now).saturating_duration_since(c));
        (queue, app)
    }

    /// Whether the loop still reads the body for the app.
    pub fn pulls_body(&self) -> bool {
        self.body.is_some()
    }

    /// Whether this is the link of `handoff` (after an internal redirect,
    /// error_page, the request may have a new context).
    pub fn owns(&self, handoff: &Arc<Handoff>) -> bool {
        Arc::ptr_eq(&self.handoff, handoff)
    }

    /// Whether `ev` is this link's queue timer (see `owns`).
    pub fn owns_timer(&self, ev: *const ngx_event_t) -> bool {
        std::ptr::eq(&self.timer, ev)
    }

    /// The request was finalized: the app is to stop at its next chunk.
    pub fn end_app(&mut self) {
        self.handoff.cancel_app();
        self.end_body();
        self.stop_timer();
    }

    /// An app that still waits for the body learns that none will come.
    fn end_body(&mut self) {
        if let Some(stream) = self.body.take() {
            stream.end(Err(BodyFault::RequestOver));
        }
    }

    /// The request is over (its pool is being destroyed): a queued request
    /// leaves the queue, the app stops at its next chunk, and the lines it
    /// handed over that the loop has not written yet are written now.
    pub fn end_request(&mut self, log: *mut ngx_log_t) {
        if !self.handoff.started() {
            // Still queued (the client left, or the worker is forced down):
            // the app must not run for it.
            pool::withdraw(self.pool, &self.handoff);
        }
        for (level, text) in self.handoff.end_request() {
            ngx_log_error!(level, log, "{}", text);
        }
        self.end_body();
        self.stop_timer();
    }

    fn stop_timer(&mut self) {
        if self.timer.timer_set() != 0 {
            // SAFETY: the timer was armed by this module on this event,
            // which lives in the request's context.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
    }
}

/// The request body is read: copy what the app needs out of the request
/// and queue it for a thread of the location's pool, within
/// `wsgi_queue_timeout` (whose timer calls `on_queue_timer`).
///
/// # Safety
/// `r` must be a live request owned by this module; `link` and `log` of its
/// context, `lc` and `main` its configuration.
pub unsafe fn submit(
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    app: usize,
    link: &mut Link,
    lc: &LocConf,
    main: &MainConf,
    on_queue_timer: ngx_event_handler_pt,
) -> Next {
    let (vars, body) = match prepare(r, link, lc, main) {
        Ok(prepared) => prepared,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, log, "wsgi: {e}");
            return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
        }
    };
    let job = Job {
        handoff: link.handoff.clone(),
        vars,
        body,
        app,
        buffering: lc.buffering(),
        ignore: lc.ignore_headers,
        read_timeout: lc.read_timeout as u64,
        spill: lc.spill.clone(),
        test_hooks: lc.test_hooks,
    };
    link.handoff.queued();
    match pool::submit(link.pool, job) {
        Ok(()) => pool::keep_worker_alive(),
        Err(Refused::Full(spec)) => {
            status::count(Counter::RefusedQueueFull);
            ngx_log_error!(
                NGX_LOG_ERR,
                log,
                "wsgi: all {} threads are busy and {} requests wait for one (wsgi_threads {} max_queue={}); answering 503",
                spec.threads,
                spec.max_queue,
                spec.threads,
                spec.max_queue
            );
            return Next::Finish(NGX_HTTP_SERVICE_UNAVAILABLE as _);
        }
        Err(Refused::NoThreads) => {
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "wsgi: the location's thread pool has no running thread in this worker (see the worker's start-up messages)"
            );
            return Next::Finish(NGX_HTTP_SERVICE_UNAVAILABLE as _);
        }
    }
    link.timer.handler = on_queue_timer;
    link.timer.data = r.cast();
    link.timer.log = log;
    ngx_add_timer(&mut link.timer, lc.queue_timeout);
    // What nginx has read of a streamed body goes to the app's stream now.
    pull_body(r, log, link).unwrap_or(Next::Queued)
}

/// What the app gets of the request, owned: its CGI variables and its
/// body (copied, in the temp file, or, with `wsgi_request_buffering off`,
/// the stream the loop fills as it arrives).
///
/// # Safety
/// `r` must be a live request whose body handler nginx has called; `link`
/// of its context, `lc` and `main` its configuration.
unsafe fn prepare(
    r: *mut ngx_http_request_t,
    link: &mut Link,
    lc: &LocConf,
    main: &MainConf,
) -> Result<(Vars, RequestBody), String> {
    if upload::streaming(r) {
        let vars = cgi::collect(r, None, lc.params(), &main.environ)?;
        let handoff = Arc::downgrade(&link.handoff);
        let stream = BodyStream::new(Box::new(move || {
            if let Some(handoff) = handoff.upgrade() {
                handoff.wake_loop();
            }
        }));
        link.body = Some(stream.clone());
        return Ok((vars, RequestBody::Stream(stream)));
    }
    let body_len = body::body_len(r);
    status::add(Counter::RequestBodyBytes, body_len as u64);
    let vars = cgi::collect(r, Some(body_len), lc.params(), &main.environ)?;
    let body = body::take_body(r, body_len)
        .map_err(|e| format!("reading the request body's temp file failed: {e}"))?;
    Ok((vars, body))
}

/// `wsgi_request_buffering off`: moves what nginx has read of the body to
/// the app's stream and has nginx read on. None while the request goes on;
/// a body that cannot be read to its end ends the request: nginx's code
/// (408, 413, 400) before the head is out, an abort after, 499 for a
/// client that left.
///
/// # Safety
/// `r` must be a live request owned by this module; `log` and `link` of
/// its context.
pub unsafe fn pull_body(
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    link: &mut Link,
) -> Option<Next> {
    let stream = link.body.as_ref()?;
    let (fault, rc) = match upload::pull(r, |data| stream.offer(data)) {
        Pulled::Waiting => return None,
        Pulled::Complete => {
            stream.end(Ok(()));
            link.body = None;
            return None;
        }
        Pulled::Failed(fault, rc) => (fault, rc),
    };
    stream.end(Err(fault));
    link.body = None;
    let (rc, level, outcome) = upload::failure(r, fault, rc);
    ngx_log_error!(
        level,
        log,
        "wsgi: reading the request body for the app failed: {}; its wsgi.input raises, {outcome}",
        fault.describe()
    );
    Some(Next::Finish(rc))
}

/// The queue timer fired: a request no thread took answers 503.
///
/// # Safety
/// `log` must be the live request's log; `link` of its context.
pub unsafe fn queue_timed_out(log: *mut ngx_log_t, link: &mut Link, lc: &LocConf) -> Option<Next> {
    if !link.handoff.cancel_if_queued() {
        return None; // a thread has it: the timer only kept it company
    }
    pool::withdraw(link.pool, &link.handoff);
    status::count(Counter::RefusedQueueTimeout);
    ngx_log_error!(
        NGX_LOG_ERR,
        log,
        "wsgi: no thread was free within wsgi_queue_timeout ({} ms); answering 503",
        lc.queue_timeout
    );
    Some(Next::Finish(NGX_HTTP_SERVICE_UNAVAILABLE as _))
}

/// The client closed the connection: like nginx's upstream module
/// (without `proxy_ignore_client_abort`), the request ends (499); a queued
/// app never runs, a running one stops at its next chunk.
///
/// # Safety
/// `log` must be the live request's log.
pub unsafe fn client_left(log: *mut ngx_log_t, link: &Link) -> Next {
    if link.handoff.started() {
        log_client_gone(log);
    } else {
        status::count(Counter::ClientAborts);
        ngx_log_error!(
            NGX_LOG_INFO,
            log,
            "wsgi: the client closed the connection while the request waited for a thread"
        );
    }
    Next::Finish(NGX_HTTP_CLIENT_CLOSED_REQUEST as _)
}

/// Passes the thread's news to nginx: log lines, the header, chunks, the
/// end; then tells the thread how the output stands. None when the
/// request stays as it is (finalized, or waiting for the client: only log
/// lines are taken then).
///
/// # Safety
/// `r` must be a live request owned by this module, its app submitted;
/// `finalized` whether the module finalized it; the rest of its context.
pub unsafe fn relay(
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    finalized: bool,
    output: &SharedOutput,
    link: &mut Link,
) -> Option<Next> {
    // Once finalized, only log lines (close() tracebacks, say) are taken.
    let take_output = !finalized && !output::lock(output).must_wait();
    let news = link.handoff.take(take_output);
    for (level, text) in &news.logs {
        ngx_log_error!(*level, log, "{}", text);
    }
    if news.timed_out && !finalized {
        // wsgi_read_timeout: whatever the thread does now is dropped.
        return Some(Next::Finish(if (*r).header_sent() != 0 {
            NGX_ERROR as _
        } else {
            NGX_HTTP_GATEWAY_TIME_OUT as _
        }));
    }
    if !take_output {
        return None; // finalized, or waiting: the write event brings us back
    }
    if link.aborting {
        return Some(Next::Finish(NGX_ERROR as _)); // what came before is out
    }
    match deliver(r, log, output, news, link) {
        Delivered::More => {}
        Delivered::Finish(rc) => return Some(Next::Finish(rc)),
        Delivered::Redirect(head) => return Some(Next::Redirect(head)),
        Delivered::Abort => link.aborting = true,
    }
    let (blocked, done) = {
        let out = output::lock(output);
        (out.must_wait(), out.done())
    };
    if link.aborting && !blocked {
        return Some(Next::Finish(NGX_ERROR as _));
    }
    link.handoff.report(blocked, done);
    Some(if blocked {
        Next::WaitForClient
    } else {
        Next::Running
    })
}

/// What `deliver` leaves the request to do.
enum Delivered {
    /// Go on: more news will come.
    More,
    /// Finalize with this code.
    Finish(ngx_int_t),
    /// The app's `X-Accel-Redirect`.
    Redirect(Box<Head>),
    /// The app failed after its head: abort, once nginx wrote the rest.
    Abort,
}

/// Sends the header and chunks in `news`, and its end.
///
/// # Safety
/// As for `relay`.
unsafe fn deliver(
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    output: &SharedOutput,
    news: News,
    link: &mut Link,
) -> Delivered {
    if let Some((head, known_length)) = news.head {
        if (*r).header_sent() == 0 {
            // Header-only or failed: the request ends, the app stops.
            if let Err(rc) = headers_out::send_head(r, &head, known_length) {
                return Delivered::Finish(rc);
            }
        }
    }
    let gone = || {
        log_client_gone(log);
        Delivered::Finish(NGX_ERROR as _)
    };
    let mut out = output::lock(output);
    if news.chunks.is_empty() && news.flush && out.send_queue(true) == NGX_ERROR as ngx_int_t {
        return gone();
    }
    let count = news.chunks.len();
    for (i, chunk) in news.chunks.into_iter().enumerate() {
        let last = i + 1 == count;
        let flush = chunk.flush || (last && news.flush);
        let written = match chunk.data {
            // SAFETY (of the pointer): the pool thread keeps the bytes
            // object until `done()` counts this chunk or the request ends.
            ChunkData::Memory(data) => out.write(data, chunk.len, flush, !last),
            // The thread wrote the range before handing it over; the link
            // holds the file open until the request ends.
            ChunkData::Spilled { file, offset } => match link.nginx_file(r, &file) {
                Some(f) => out.write_file(f, offset, chunk.len, flush, !last),
                None => Err(()),
            },
            // The request pool closes the descriptor when the request ends.
            ChunkData::File(body) => {
                match nginx::file::owned_by_request_pool(r, body.fd, body.name.as_bytes()) {
                    Some(f) => out.send_file_last(f, body.offset, chunk.len),
                    None => Err(()),
                }
            }
        };
        match written {
            Err(()) => return Delivered::Finish(NGX_ERROR as _),
            Ok(rc) if rc == NGX_ERROR as ngx_int_t => return gone(),
            Ok(_) => {}
        }
    }
    match news.end {
        None => Delivered::More,
        // An abort after the head (the app raised, a short body): what the
        // app produced before goes out first.
        Some(End::Finalize(rc)) if rc == NGX_ERROR as ngx_int_t && (*r).header_sent() != 0 => {
            Delivered::Abort
        }
        Some(End::Finalize(rc)) => Delivered::Finish(rc),
        Some(End::Redirect(head)) => Delivered::Redirect(head),
        Some(End::Complete(_)) => {
            // The last buffer flushes every filter.
            let rc = out.send_last();
            if rc == NGX_ERROR as ngx_int_t {
                return gone();
            }
            Delivered::Finish(rc)
        }
    }
}
