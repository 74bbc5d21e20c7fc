;; Scatter-add of scaled rows: for each of n entries (src byte offset i32, dst byte offset i32,
;; scale f64; 16 bytes each, at `list`), Z[dst .. dst+cols) += scale · A[src .. src+cols), f64.
;; The row loop runs over f64x2 pairs, unrolled by two, with a scalar tail for odd `cols`.
(module
  (memory (export "memory") 1)
  (func (export "scatter") (param $n i32) (param $cols i32) (param $list i32)
    (local $e i32) (local $src i32) (local $dst i32) (local $s v128) (local $sf f64)
    (local $j i32) (local $pairs i32) (local $quads i32)
    (local.set $pairs (i32.shr_u (local.get $cols) (i32.const 1)))
    (local.set $quads (i32.shr_u (local.get $cols) (i32.const 2)))
    (block $done_e
      (loop $loop_e
        (br_if $done_e (i32.ge_u (local.get $e) (local.get $n)))
        (local.set $src (i32.load (local.get $list)))
        (local.set $dst (i32.load offset=4 (local.get $list)))
        (local.set $sf (f64.load offset=8 (local.get $list)))
        (local.set $s (f64x2.splat (local.get $sf)))
        (local.set $j (local.get $quads))
        (block $done_q
          (loop $loop_q
            (br_if $done_q (i32.eqz (local.get $j)))
            (v128.store (local.get $dst)
              (f64x2.add (v128.load (local.get $dst)) (f64x2.mul (local.get $s) (v128.load (local.get $src)))))
            (v128.store offset=16 (local.get $dst)
              (f64x2.add (v128.load offset=16 (local.get $dst)) (f64x2.mul (local.get $s) (v128.load offset=16 (local.get $src)))))
            (local.set $src (i32.add (local.get $src) (i32.const 32)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $loop_q)))
        ;; one more pair when cols mod 4 is 2 or 3
        (if (i32.and (local.get $pairs) (i32.const 1))
          (then
            (v128.store (local.get $dst)
              (f64x2.add (v128.load (local.get $dst)) (f64x2.mul (local.get $s) (v128.load (local.get $src)))))
            (local.set $src (i32.add (local.get $src) (i32.const 16)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))))
        ;; the last element when cols is odd
        (if (i32.and (local.get $cols) (i32.const 1))
          (then
            (f64.store (local.get $dst)
              (f64.add (f64.load (local.get $dst)) (f64.mul (local.get $sf) (f64.load (local.get $src)))))))
        (local.set $list (i32.add (local.get $list) (i32.const 16)))
        (local.set $e (i32.add (local.get $e) (i32.const 1)))
        (br $loop_e)))))
