//! Images streamed from disk: every epoch decodes the files again, in
//! background threads that work a few batches ahead of training, and yields the
//! batches in the seeded order a held [`Dataset`](super::Dataset) would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};

use super::dataset::{visiting_order, Batch, LastBatch, Shuffle};
use super::decode::{decode_file, ImageFolderOptions};
use super::source::{BatchIter, ImageSource};
use crate::nets::ImageShape;
use crate::{Error, Result};

/// Image files decoded anew each epoch, from [`ImageFolder::load`](super::ImageFolder::load)
/// when their pixels exceed the memory budget.
///
/// [`batches`](ImageSource::batches) draws the visiting order as a held
/// [`Dataset`](super::Dataset) does, then `workers` threads decode whole
/// batches, at most `prefetch` batches ahead of the one training takes, and the
/// batches are yielded in order. Only the batches in flight are in memory.
#[derive(Debug, Clone)]
pub struct StreamedImages {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    files: Vec<PathBuf>,
    labels: Option<Vec<u8>>,
    options: ImageFolderOptions,
}

impl StreamedImages {
    pub(crate) fn new(
        files: Vec<PathBuf>,
        labels: Option<Vec<u8>>,
        options: ImageFolderOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                files,
                labels,
                options,
            }),
        }
    }

    /// The files, in dataset order.
    pub fn files(&self) -> &[PathBuf] {
        &self.inner.files
    }

    /// The labels, one per file, if there are labels.
    pub fn labels(&self) -> Option<&[u8]> {
        self.inner.labels.as_deref()
    }

    /// The images at `indices`, in that order, decoded now on this thread, as
    /// one batch on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if an index is out of range; [`Error::Data`] naming a
    /// file that can no longer be read; [`Error::Candle`] if the tensors
    /// cannot be made.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.inner.files.len()) {
            return Err(Error::config(
                "indices",
                format!(
                    "index {bad} out of range for {} images",
                    self.inner.files.len()
                ),
            ));
        }
        let pixels = self.inner.decode(indices)?;
        self.inner.to_batch(pixels, indices.to_vec(), device)
    }
}

impl Inner {
    /// The pixels `[n, c, h, w]` of the files at `indices`.
    fn decode(&self, indices: &[usize]) -> Result<Vec<f32>> {
        let numel = self.options.shape().numel();
        let mut pixels = Vec::with_capacity(indices.len() * numel);
        for &i in indices {
            let path = &self.files[i];
            let px = decode_file(path, &self.options).map_err(|reason| Error::Data {
                path: path.clone(),
                reason: format!("can no longer be read while streaming: {reason}"),
            })?;
            pixels.extend_from_slice(&px);
        }
        Ok(pixels)
    }

    fn to_batch(&self, pixels: Vec<f32>, indices: Vec<usize>, device: &Device) -> Result<Batch> {
        let ImageShape {
            channels: c,
            height: h,
            width: w,
        } = self.options.shape();
        let b = indices.len();
        let images = Tensor::from_vec(pixels, (b, c, h, w), device)?; // [b, c, h, w]
        let labels = match &self.labels {
            Some(all) => {
                let l: Vec<u32> = indices.iter().map(|&i| u32::from(all[i])).collect();
                Some(Tensor::from_vec(l, b, device)?) // [b]
            }
            None => None,
        };
        Ok(Batch {
            images,
            labels,
            indices,
            targets: None,
        })
    }
}

impl ImageSource for StreamedImages {
    fn len(&self) -> usize {
        self.inner.files.len()
    }

    fn shape(&self) -> ImageShape {
        self.inner.options.shape()
    }

    fn has_labels(&self) -> bool {
        self.inner.labels.is_some()
    }

    fn batches<'a>(
        &'a self,
        batch_size: usize,
        shuffle: Shuffle<'_>,
        last: LastBatch,
        device: &Device,
    ) -> Result<BatchIter<'a>> {
        let order = visiting_order(self.len(), batch_size, shuffle, last)?;
        let jobs: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        Ok(Box::new(StreamedBatches::start(
            Arc::clone(&self.inner),
            jobs,
            device.clone(),
        )))
    }
}

/// A decoded batch (or why not) from a worker, by batch number.
type Done = (usize, Result<Vec<f32>>);

/// The batches of one epoch, decoded ahead by worker threads.
struct StreamedBatches {
    inner: Arc<Inner>,
    jobs: Vec<Vec<usize>>,
    device: Device,
    /// The next batch to yield.
    next: usize,
    /// The next batch to hand to a worker.
    sent: usize,
    job_tx: Option<Sender<usize>>,
    done_rx: Receiver<Done>,
    ready: BTreeMap<usize, Result<Vec<f32>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl StreamedBatches {
    fn start(inner: Arc<Inner>, jobs: Vec<Vec<usize>>, device: Device) -> Self {
        let (job_tx, job_rx) = channel::<usize>();
        let (done_tx, done_rx) = channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let stop = Arc::new(AtomicBool::new(false));
        let jobs_shared: Arc<Vec<Vec<usize>>> = Arc::new(jobs.clone());
        let workers = (0..inner.options.workers.min(jobs.len()).max(1))
            .map(|_| {
                let (inner, job_rx, done_tx, stop, jobs) = (
                    Arc::clone(&inner),
                    Arc::clone(&job_rx),
                    done_tx.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&jobs_shared),
                );
                std::thread::spawn(move || loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(k) = job else { return };
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let result = inner.decode(&jobs[k]);
                    if done_tx.send((k, result)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        let mut batches = Self {
            inner,
            jobs,
            device,
            next: 0,
            sent: 0,
            job_tx: Some(job_tx),
            done_rx,
            ready: BTreeMap::new(),
            stop,
            workers,
        };
        batches.send_jobs();
        batches
    }

    /// Hands out batches until `prefetch` are ahead of the next one yielded.
    fn send_jobs(&mut self) {
        let ahead = self.inner.options.prefetch;
        while self.sent < self.jobs.len() && self.sent < self.next + ahead {
            if let Some(tx) = &self.job_tx {
                if tx.send(self.sent).is_err() {
                    return;
                }
            }
            self.sent += 1;
        }
    }
}

impl Iterator for StreamedBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.jobs.len() {
            return None;
        }
        let k = self.next;
        let pixels = loop {
            if let Some(p) = self.ready.remove(&k) {
                break p;
            }
            match self.done_rx.recv() {
                Ok((j, p)) => {
                    self.ready.insert(j, p);
                }
                Err(_) => {
                    self.next = self.jobs.len();
                    return Some(Err(Error::Data {
                        path: self.inner.files.first().cloned().unwrap_or_default(),
                        reason: "the threads decoding streamed images stopped".into(),
                    }));
                }
            }
        };
        self.next += 1;
        self.send_jobs();
        let indices = std::mem::take(&mut self.jobs[k]);
        Some(pixels.and_then(|p| self.inner.to_batch(p, indices, &self.device)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.jobs.len() - self.next;
        (left, Some(left))
    }
}

impl Drop for StreamedBatches {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the job channel ends every worker once it finishes its batch.
        self.job_tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
