"""A listing resumed with an all-zero cookie verifier is served (review finding 8).

/tmp/review/exp_cookieverf.py: the Linux client zeroes its verifier when it
drops a directory's cached attributes and resumes at its cookie; that got
NFS3ERR_BAD_COOKIE.  A non-zero verifier that is not the directory's still does.
"""
from __future__ import annotations

import pytest

from nfs3_harness import OK, N


@pytest.fixture
def big_dir(server, root):
    for i in range(50):
        (server.brick() / f"f{i:03}").touch()
    return root


def _names(entries) -> list[bytes]:
    return [bytes(e.name) for e in entries]


@pytest.mark.parametrize("plus", [False, True])
def test_zero_verifier_resumes_where_the_real_one_does(nfs, big_dir, plus):
    def listing(cookie, verf):
        if plus:
            return nfs.readdirplus(big_dir, cookie, verf, dircount=400, maxcount=2000)
        return nfs.readdir(big_dir, cookie, verf, count=600)

    status, first = listing(0, bytes(8))
    assert status == OK and not first.reply.eof
    cookie, verf = first.reply.entries[-1].cookie, bytes(first.cookieverf)
    assert verf != bytes(8)
    status, with_real = listing(cookie, verf)
    assert status == OK
    status, with_zero = listing(cookie, bytes(8))
    assert status == OK and bytes(with_zero.cookieverf) == verf
    assert _names(with_zero.reply.entries) == _names(with_real.reply.entries)
    assert not set(_names(with_zero.reply.entries)) & set(_names(first.reply.entries))


def test_zero_verifier_lists_a_whole_directory(nfs, big_dir):
    seen, cookie = [], 0
    for _ in range(100):
        status, res = nfs.readdir(big_dir, cookie, bytes(8), count=600)   # never a real verf
        assert status == OK
        seen += _names(res.reply.entries)
        if res.reply.eof:
            break
        cookie = res.reply.entries[-1].cookie
    assert sorted(n for n in seen if n not in (b".", b"..")) == \
        [b"f%03d" % i for i in range(50)]
    assert len(seen) == len(set(seen))


def test_a_foreign_verifier_is_still_bad_cookie(nfs, big_dir, root):
    status, first = nfs.readdir(big_dir, count=600)
    cookie = first.reply.entries[-1].cookie
    other = bytes(nfs.readdir(nfs.new_dir(root, b"zz"))[1].cookieverf)   # another directory's
    for verf in (other, b"wrong!!!"):
        status, res = nfs.readdir(big_dir, cookie, verf, count=600)
        assert status == N.NFS3ERR_BAD_COOKIE and res.dir_attributes[0]
        assert nfs.readdirplus(big_dir, cookie, verf)[0] == N.NFS3ERR_BAD_COOKIE
    assert nfs.readdir(big_dir, 0, b"wrong!!!", count=600)[0] == OK     # cookie 0: no check
