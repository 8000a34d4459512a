"""Getting things in: photos (:mod:`~course_utils.io.images`, pixels 0..255 out), the one download
routine (:mod:`~course_utils.io.fetch`) and a safe reader of legacy PyTorch weight files
(:mod:`~course_utils.io.pth`). Depends on nothing else in the course but its checks."""
