//! The shared memory zone `wsgi_status` reads: the totals of workers that
//! exited, and one slot per nginx process slot for the workers that run.
//! nginx maps it before it forks the workers, and keeps it over a reload
//! (same name, size and tag), so the figures survive `nginx -s reload`.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_module_t, ngx_shared_memory_add, ngx_shm_zone_init_pt,
    ngx_shm_zone_t, ngx_slab_calloc, ngx_slab_pool_t, ngx_str_t, NGX_ERROR, NGX_MAX_PROCESSES,
    NGX_OK,
};

use super::{BUCKETS, COUNTERS, GAUGES, HISTOGRAMS};

#[repr(C)]
pub struct HistogramCells {
    /// One per bucket of `BUCKETS`, then +Inf (not cumulative).
    pub buckets: [AtomicU64; BUCKETS.len() + 1],
    pub sum_us: AtomicU64,
}

#[repr(C)]
pub struct Slot {
    /// The worker's pid; 0: free.
    pub pid: AtomicU64,
    pub counters: [AtomicU64; COUNTERS],
    /// Signed values, two's complement.
    pub gauges: [AtomicU64; GAUGES],
    pub histograms: [HistogramCells; HISTOGRAMS],
}

#[repr(C)]
pub struct Zone {
    /// The counts of workers that exited.
    pub totals: Slot,
    pub slots: [Slot; NGX_MAX_PROCESSES as usize],
}

/// The zone, once nginx has mapped it (set in the master, inherited by the
/// workers; a reload sets it again before it forks new ones).
static ZONE: AtomicPtr<Zone> = AtomicPtr::new(std::ptr::null_mut());

pub fn get() -> Option<&'static Zone> {
    // SAFETY: null, or the zone in shared memory nginx keeps mapped.
    unsafe { ZONE.load(Ordering::Relaxed).as_ref() }
}

const NAME: &str = "wsgi_status";

/// Asks nginx for the zone (postconfiguration); `init` is the handler that
/// calls `init`.
///
/// # Safety
/// `cf` must be the configuration being parsed; `tag` this module.
pub unsafe fn add(
    cf: *mut ngx_conf_t,
    tag: *const ngx_module_t,
    init: ngx_shm_zone_init_pt,
) -> Result<(), ()> {
    let mut name = ngx_str_t {
        len: NAME.len(),
        data: NAME.as_ptr() as *mut u8,
    };
    // Room for the zone and the slab pool nginx puts in front of it.
    let size = std::mem::size_of::<Zone>() + 64 * 1024;
    let shm = ngx_shared_memory_add(cf, &mut name, size, tag as *mut _);
    if shm.is_null() {
        return Err(());
    }
    (*shm).init = init;
    Ok(())
}

/// nginx mapped the zone: `old` is the zone of the configuration before a
/// reload, kept as it is.
///
/// # Safety
/// `shm` must be the zone nginx initializes, in the master.
pub unsafe fn init(shm: *mut ngx_shm_zone_t, old: *mut std::ffi::c_void) -> ngx_int_t {
    let zone = if !old.is_null() {
        old as *mut Zone
    } else {
        let pool = (*shm).shm.addr as *mut ngx_slab_pool_t;
        ngx_slab_calloc(pool, std::mem::size_of::<Zone>()) as *mut Zone
    };
    if zone.is_null() {
        return NGX_ERROR as _;
    }
    (*shm).data = zone.cast();
    ZONE.store(zone, Ordering::Relaxed);
    NGX_OK as _
}

/// A worker's slot at `index`, for `pid`; None without a zone.
pub fn claim(index: usize, pid: u32) -> Option<&'static Slot> {
    let zone = get()?;
    let slot = zone.slots.get(index)?;
    if slot.pid.load(Ordering::Relaxed) != 0 {
        release(slot); // a worker that did not exit cleanly
    }
    slot.pid.store(pid as u64, Ordering::Relaxed);
    Some(slot)
}

/// Adds `slot`'s counts to the totals and frees it.
pub fn release(slot: &Slot) {
    let Some(zone) = get() else {
        return;
    };
    let totals = &zone.totals;
    for (total, cell) in totals.counters.iter().zip(&slot.counters) {
        total.fetch_add(cell.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }
    for (total, cell) in totals.histograms.iter().zip(&slot.histograms) {
        for (t, c) in total.buckets.iter().zip(&cell.buckets) {
            t.fetch_add(c.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        total
            .sum_us
            .fetch_add(cell.sum_us.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }
    // Gauges describe the worker: they go with it.
    for gauge in &slot.gauges {
        gauge.store(0, Ordering::Relaxed);
    }
    slot.pid.store(0, Ordering::Relaxed);
}
