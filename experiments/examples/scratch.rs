use candle_core::{Device, Tensor};
use ganem_core::ops::{Im2Col, PatchGeometry};
use std::time::Instant;
fn t<F: FnMut() -> Tensor>(name: &str, mut f: F) {
    f();
    let s = Instant::now();
    for _ in 0..5 { f(); }
    println!("{name}: {:.2} ms", s.elapsed().as_secs_f64() * 1e3 / 5.0);
}
fn main() {
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1f32, (128, 14, 14, 64), &dev).unwrap();
    let g = PatchGeometry { batch: 128, height: 14, width: 14, channels: 64, kernel: 4, stride: 2, padding: 1 };
    let cols = x.apply_op1_no_bwd(&Im2Col(g)).unwrap();
    let w = Tensor::rand(0f32, 1f32, (1024, 128), &dev).unwrap();
    t("im2col", || x.apply_op1_no_bwd(&Im2Col(g)).unwrap());
    t("matmul 6272x1024x128", || cols.matmul(&w).unwrap());
    let a = Tensor::rand(0f32, 1f32, (1024, 1024), &dev).unwrap();
    t("matmul 1024^3", || a.matmul(&a).unwrap());
    let y = cols.matmul(&w).unwrap();
    t("mean_keepdim(0) 6272x128", || y.mean_keepdim(0).unwrap());
    t("sqr", || y.sqr().unwrap());
    let m = y.mean_keepdim(0).unwrap();
    t("broadcast_sub", || y.broadcast_sub(&m).unwrap());
    t("cols^T @ grad (1024x6272 @ 6272x128)", || cols.t().unwrap().matmul(&y).unwrap());
    t("grad @ w^T (6272x128 @ 128x1024)", || y.matmul(&w.t().unwrap()).unwrap());
}
