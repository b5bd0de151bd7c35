"""The protocol definition files: byte-exact encodings written out by hand
from the RFCs, program tables, and the big NFS replies."""
from __future__ import annotations

import pytest

from rpcsvc import xdr
from rpcsvc.xdr import XdrBadValue, XdrLimitExceeded, XdrShortBuffer

rpc = xdr.load("rpc")
pmap = xdr.load("portmap")
nfs3 = xdr.load("nfs3")
mnt = xdr.load("mount3")
nlm = xdr.load("nlm4")
hndsk = xdr.load("gluster_hndsk")


def h(text: str) -> bytes:
    """Hex with spaces and '#' comments, as the RFC layouts are written out."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()).replace(" ", ""))


# -- RPC (RFC 5531) -----------------------------------------------------------

CALL_WITH_AUTH_SYS = h("""
    12345678  00000000  00000002          # xid, CALL, rpcvers 2
    000186a3  00000003  00000001          # program 100003, version 3, GETATTR
    00000001  00000024                    # AUTH_SYS, 36 bytes of body:
        0000abcd                          #   stamp
        00000006 636c69656e74 0000        #   machinename "client" + 2 pad bytes
        000003e8  00000064                #   uid 1000, gid 100
        00000002  00000064 0000000a       #   gids [100, 10]
    00000000  00000000                    # verifier AUTH_NONE, empty
""")


def test_rpc_call_header_with_auth_sys_is_byte_exact():
    cred = rpc.authsys_parms(stamp=0xABCD, machinename=b"client", uid=1000, gid=100,
                             gids=[100, 10])
    body = rpc.authsys_parms.encode(cred)
    assert len(body) == 36
    call = rpc.rpc_msg(xid=0x12345678, body=(rpc.CALL, rpc.call_body(
        rpcvers=2, prog=nfs3.NFS_PROGRAM, vers=nfs3.NFS_V3, proc=nfs3.NFSPROC3_GETATTR,
        cred=rpc.opaque_auth(rpc.AUTH_SYS, body), verf=rpc.opaque_auth(rpc.AUTH_NONE, b""))))
    assert rpc.rpc_msg.encode(call) == CALL_WITH_AUTH_SYS

    # the server side: the header, then the arguments right after it
    wire = CALL_WITH_AUTH_SYS + h("00000004 01020304")
    msg, end = rpc.rpc_msg.decode(wire)
    assert msg.xid == 0x12345678 and msg.body[0] == rpc.CALL
    cbody = msg.body[1]
    assert (cbody.prog, cbody.vers, cbody.proc) == (100003, 3, 1)
    assert rpc.authsys_parms.decode_all(cbody.cred.body) == cred
    args = nfs3.GETATTR3args.decode_all(wire, end)
    assert args.object.data == b"\x01\x02\x03\x04"


def test_rpc_replies_are_byte_exact():
    verf = rpc.opaque_auth(rpc.AUTH_NONE, b"")
    success = rpc.rpc_msg(7, (rpc.REPLY, (rpc.MSG_ACCEPTED, rpc.accepted_reply(
        verf, (rpc.SUCCESS, b"")))))
    assert rpc.rpc_msg.encode(success) == h("00000007 00000001 00000000 00000000 00000000 00000000")
    mismatch = rpc.rpc_msg(7, (rpc.REPLY, (rpc.MSG_ACCEPTED, rpc.accepted_reply(
        verf, (rpc.PROG_MISMATCH, rpc.accepted_reply_mismatch_info(3, 3))))))
    assert rpc.rpc_msg.encode(mismatch) == h(
        "00000007 00000001 00000000 00000000 00000000 00000002 00000003 00000003")
    garbage = rpc.rpc_msg(7, (rpc.REPLY, (rpc.MSG_ACCEPTED, rpc.accepted_reply(
        verf, (rpc.GARBAGE_ARGS, None)))))
    assert rpc.rpc_msg.encode(garbage) == h("00000007 00000001 00000000 00000000 00000000 00000004")
    rpc_mismatch = rpc.rpc_msg(7, (rpc.REPLY, (rpc.MSG_DENIED, (
        rpc.RPC_MISMATCH, rpc.rejected_reply_mismatch_info(2, 2)))))
    assert rpc.rpc_msg.encode(rpc_mismatch) == h(
        "00000007 00000001 00000001 00000000 00000002 00000002")
    auth_error = rpc.rpc_msg(7, (rpc.REPLY, (rpc.MSG_DENIED, (rpc.AUTH_ERROR, rpc.AUTH_TOOWEAK))))
    assert rpc.rpc_msg.encode(auth_error) == h("00000007 00000001 00000001 00000001 00000005")
    for msg in (success, mismatch, garbage, rpc_mismatch, auth_error):
        assert rpc.rpc_msg.decode_all(rpc.rpc_msg.encode(msg)) == msg


def test_rpc_bad_headers():
    with pytest.raises(XdrBadValue):                # msg_type 2 does not exist
        rpc.rpc_msg.decode(h("00000001 00000002"))
    with pytest.raises(XdrShortBuffer):             # header cut in the credential
        rpc.rpc_msg.decode(CALL_WITH_AUTH_SYS[:40])
    with pytest.raises(XdrLimitExceeded):           # credential body over 400 bytes
        rpc.rpc_msg.decode(CALL_WITH_AUTH_SYS[:28] + h("00000191") + bytes(404))
    with pytest.raises(XdrLimitExceeded):           # more than 16 groups
        rpc.authsys_parms.encode(rpc.authsys_parms(0, b"h", 0, 0, list(range(17))))
    assert rpc.RPCSEC_GSS == 6 and rpc.AUTH_DH == 3 and rpc.RPCSEC_GSS_CTXPROBLEM == 14
    assert (rpc.PROG_UNAVAIL, rpc.PROG_MISMATCH, rpc.PROC_UNAVAIL, rpc.GARBAGE_ARGS,
            rpc.SYSTEM_ERR) == (1, 2, 3, 4, 5)


# -- portmap / rpcbind (RFC 1833) -------------------------------------------------

def test_portmap_getport_mapping_is_byte_exact():
    mapping = pmap.mapping(prog=100003, vers=3, prot=pmap.IPPROTO_TCP, port=0)
    assert pmap.mapping.encode(mapping) == h("000186a3 00000003 00000006 00000000")
    proc = pmap.programs["PMAP_PROG"].versions[2].procs[pmap.PMAPPROC_GETPORT]
    assert proc.name == "PMAPPROC_GETPORT" and proc.arg is pmap.mapping
    assert proc.res.encode(2049) == h("00000801")
    assert proc.res.decode_all(h("00000801")) == 2049


def test_portmap_program_tables():
    pm = pmap.programs["PMAP_PROG"]
    assert pm.number == 100000 and list(pm.versions) == [2]
    assert {n: p.name for n, p in pm.versions[2].procs.items()} == {
        0: "PMAPPROC_NULL", 1: "PMAPPROC_SET", 2: "PMAPPROC_UNSET", 3: "PMAPPROC_GETPORT",
        4: "PMAPPROC_DUMP", 5: "PMAPPROC_CALLIT"}
    rb = pmap.programs["RPCBPROG"]
    assert rb.number == 100000 and sorted(rb.versions) == [3, 4]
    assert sorted(rb.versions[3].procs) == list(range(9))
    assert sorted(rb.versions[4].procs) == list(range(13))
    v4 = rb.versions[4].procs
    assert v4[5].name == "RPCBPROC_BCAST" and v4[10].name == "RPCBPROC_INDIRECT"
    assert v4[11].res is pmap.rpcb_entry_list_ptr and v4[12].res is pmap.rpcb_stat_byvers
    assert (pmap.rpcb_highproc_2, pmap.rpcb_highproc_3, pmap.rpcb_highproc_4) == (5, 8, 12)


def test_portmap_dump_list_and_rpcbind_types():
    entries = [pmap.pmaplist(pmap.mapping(100000, 2, 6, 111)),
               pmap.pmaplist(pmap.mapping(100003, 3, 17, 2049))]
    data = pmap.pmaplist_ptr.encode(entries)
    assert data == h("00000001 000186a0 00000002 00000006 0000006f"
                     "00000001 000186a3 00000003 00000011 00000801 00000000")
    assert pmap.pmaplist_ptr.decode_all(data) == entries
    assert pmap.pmaplist_ptr.encode([]) == h("00000000")
    regs = [pmap.rp__list(pmap.rpcb(100003, 3, b"tcp", b"0.0.0.0.8.1", b"superuser"))]
    assert pmap.rpcblist_ptr.decode_all(pmap.rpcblist_ptr.encode(regs)) == regs
    stat = pmap.rpcb_stat(list(range(13)), 1, 2,
                          [pmap.rpcbs_addrlist(100003, 3, 5, 0, b"tcp")], [])
    stats = [stat] * pmap.RPCBVERS_STAT
    assert pmap.rpcb_stat_byvers.decode_all(pmap.rpcb_stat_byvers.encode(stats)) == stats
    nb = pmap.netbuf(16, b"\x00\x02\x08\x01\x7f\x00\x00\x01")
    assert pmap.netbuf.decode_all(pmap.netbuf.encode(nb)) == nb


# -- NFS v3 (RFC 1813) --------------------------------------------------------------

NFS_PROCS = ["NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
             "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK",
             "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT"]


def test_all_22_nfs_procedures_with_their_codecs():
    prog = nfs3.programs["NFS_PROGRAM"]
    assert prog.number == 100003 and list(prog.versions) == [3]
    procs = prog.versions[3].procs
    assert sorted(procs) == list(range(22))
    for number, short in enumerate(NFS_PROCS):
        proc = procs[number]
        assert proc.name == "NFSPROC3_" + short and proc.number == number
        assert getattr(nfs3, proc.name) == number
        if short == "NULL":
            assert proc.arg.name == proc.res.name == "void"
        else:
            assert proc.arg is getattr(nfs3, f"{short}3args")
            assert proc.res is getattr(nfs3, f"{short}3res")


def test_nfs_constants_match_the_rfc():
    assert (nfs3.NFS3_FHSIZE, nfs3.NFS3_COOKIEVERFSIZE, nfs3.NFS3_WRITEVERFSIZE) == (64, 8, 8)
    assert nfs3.nfsstat3.members["NFS3ERR_STALE"] == 70 == nfs3.NFS3ERR_STALE
    assert (nfs3.NFS3ERR_BADHANDLE, nfs3.NFS3ERR_JUKEBOX, nfs3.NFS3ERR_NOTEMPTY) == (10001, 10008, 66)
    assert (nfs3.NF3REG, nfs3.NF3FIFO, nfs3.FILE_SYNC, nfs3.EXCLUSIVE) == (1, 7, 2, 2)
    assert (nfs3.ACCESS3_EXECUTE, nfs3.FSF3_CANSETTIME) == (0x20, 0x10)
    assert nfs3.nfsstat3.names[10006] == "NFS3ERR_SERVERFAULT"


def fattr(i: int):
    t = nfs3.nfstime3(1_700_000_000 + i, i)
    return nfs3.fattr3(nfs3.NF3REG, 0o100644, 1, 1000, 100, i * 10, 4096,
                       nfs3.specdata3(0, 0), 0x1234, 1_000_000 + i, t, t, t)


def test_getattr_reply_is_one_status_plus_84_bytes():
    data = nfs3.GETATTR3res.encode((nfs3.NFS3_OK, nfs3.GETATTR3resok(fattr(1))))
    assert len(data) == 4 + 84 and data[:8] == h("00000000 00000001")
    assert nfs3.GETATTR3res.encode((nfs3.NFS3ERR_STALE, None)) == h("00000046")
    with pytest.raises(XdrBadValue):            # the error arm is void
        nfs3.GETATTR3res.encode((nfs3.NFS3ERR_STALE, nfs3.GETATTR3resok(fattr(1))))


def test_readdirplus_with_10000_entries_round_trips():
    entries = []
    for i in range(10_000):
        handle = (True, nfs3.nfs_fh3(i.to_bytes(4, "big") * 5))
        attrs = (True, fattr(i)) if i % 7 else (False, None)
        entries.append(nfs3.entryplus3(1_000_000 + i, b"file-%05d" % i, i + 1, attrs, handle))
    res = (nfs3.NFS3_OK, nfs3.READDIRPLUS3resok(
        (True, fattr(0)), b"verifier", nfs3.dirlistplus3(entries, True)))
    out = bytearray(b"RPC-HEADER")
    nfs3.READDIRPLUS3res.pack(res, out)
    value, end = nfs3.READDIRPLUS3res.decode(memoryview(out), 10)
    assert end == len(out)
    assert value == res
    back = value[1].reply.entries
    assert len(back) == 10_000 and back[9_999].name == b"file-09999"
    assert back[7].name_attributes == (False, None)


def test_fattr3_heavy_structures_round_trip():
    wcc = nfs3.wcc_data((True, nfs3.wcc_attr(10, nfs3.nfstime3(1, 2), nfs3.nfstime3(3, 4))),
                        (True, fattr(3)))
    renames = [(nfs3.NFS3_OK, nfs3.RENAME3resok(wcc, wcc)),
               (nfs3.NFS3ERR_NOTEMPTY, nfs3.RENAME3resfail(wcc, nfs3.wcc_data((False, None),
                                                                              (False, None))))]
    for res in renames:
        assert nfs3.RENAME3res.decode_all(nfs3.RENAME3res.encode(res)) == res
    lookup = (nfs3.NFS3_OK, nfs3.LOOKUP3resok(nfs3.nfs_fh3(b"h" * 64), (True, fattr(1)),
                                              (True, fattr(2))))
    assert nfs3.LOOKUP3res.decode_all(nfs3.LOOKUP3res.encode(lookup)) == lookup
    fsinfo = (nfs3.NFS3_OK, nfs3.FSINFO3resok((True, fattr(4)), 1 << 20, 1 << 20, 4096,
                                              1 << 20, 1 << 20, 4096, 1 << 16, 2 ** 63,
                                              nfs3.nfstime3(0, 1), 0x1B))
    assert nfs3.FSINFO3res.decode_all(nfs3.FSINFO3res.encode(fsinfo)) == fsinfo
    readdir = (nfs3.NFS3_OK, nfs3.READDIR3resok((True, fattr(5)), bytes(8), nfs3.dirlist3(
        [nfs3.entry3(i, b"e%d" % i, i) for i in range(1000)], False)))
    assert nfs3.READDIR3res.decode_all(nfs3.READDIR3res.encode(readdir)) == readdir


def test_nfs_arguments_clients_send():
    setattr_args = nfs3.SETATTR3args(
        nfs3.nfs_fh3(b"fh"),
        nfs3.sattr3((True, 0o600), (False, None), (False, None), (True, 0),
                    (nfs3.SET_TO_CLIENT_TIME, nfs3.nfstime3(5, 6)), (nfs3.SET_TO_SERVER_TIME, None)),
        (True, nfs3.nfstime3(7, 8)))
    assert nfs3.SETATTR3args.decode_all(nfs3.SETATTR3args.encode(setattr_args)) == setattr_args
    for how in [(nfs3.UNCHECKED, setattr_args.new_attributes), (nfs3.EXCLUSIVE, b"12345678")]:
        args = nfs3.CREATE3args(nfs3.diropargs3(nfs3.nfs_fh3(b"d"), b"new"), how)
        assert nfs3.CREATE3args.decode_all(nfs3.CREATE3args.encode(args)) == args
    mknod = nfs3.MKNOD3args(nfs3.diropargs3(nfs3.nfs_fh3(b"d"), b"dev"),
                            (nfs3.NF3CHR, nfs3.devicedata3(setattr_args.new_attributes,
                                                           nfs3.specdata3(1, 3))))
    assert nfs3.MKNOD3args.decode_all(nfs3.MKNOD3args.encode(mknod)) == mknod
    rename = nfs3.RENAME3args(from_=nfs3.diropargs3(nfs3.nfs_fh3(b"a"), b"x"),
                              to=nfs3.diropargs3(nfs3.nfs_fh3(b"b"), b"y"))
    assert nfs3.RENAME3args.decode_all(nfs3.RENAME3args.encode(rename)).from_.name == b"x"


def test_write_payload_is_a_view_into_the_receive_buffer():
    payload = bytes(range(256)) * 16
    args = nfs3.WRITE3args(nfs3.nfs_fh3(b"F" * 32), 8192, len(payload), nfs3.UNSTABLE, payload)
    record = bytearray(nfs3.WRITE3args.encode(args))
    view = memoryview(record)
    decoded, end = nfs3.WRITE3args.decode(view)
    assert end == len(record)
    assert isinstance(decoded.data, memoryview) and decoded.data.obj is record
    assert decoded.data == payload and decoded.stable == nfs3.UNSTABLE
    with pytest.raises(XdrLimitExceeded):       # handles are at most 64 bytes
        nfs3.WRITE3args.encode(nfs3.WRITE3args(nfs3.nfs_fh3(b"F" * 65), 0, 0, 0, b""))
    with pytest.raises(XdrBadValue):            # stable_how 3 is not declared
        nfs3.WRITE3args.decode(bytes(record[:48]) + h("00000003") + bytes(record[52:]))


def test_verifiers_are_exactly_eight_bytes():
    good = nfs3.COMMIT3resok(nfs3.wcc_data((False, None), (False, None)), b"\x01" * 8)
    assert nfs3.COMMIT3res.decode_all(nfs3.COMMIT3res.encode((nfs3.NFS3_OK, good))) == (0, good)
    with pytest.raises(XdrBadValue):
        nfs3.COMMIT3res.encode((nfs3.NFS3_OK, nfs3.COMMIT3resok(good.file_wcc, b"\x01" * 7)))


# -- MOUNT (RFC 1813 App. I, RFC 1094 App. A) ------------------------------------------

def test_mount_program_has_versions_1_and_3():
    prog = mnt.programs["MOUNT_PROGRAM"]
    assert prog.number == 100005 and sorted(prog.versions) == [1, 3]
    v3 = prog.versions[3].procs
    assert [v3[n].name for n in range(6)] == [
        "MOUNTPROC3_NULL", "MOUNTPROC3_MNT", "MOUNTPROC3_DUMP", "MOUNTPROC3_UMNT",
        "MOUNTPROC3_UMNTALL", "MOUNTPROC3_EXPORT"]
    assert v3[1].arg is mnt.dirpath and v3[1].res is mnt.mountres3
    v1 = prog.versions[1].procs
    assert [v1[n].name for n in range(6)] == [
        "MOUNTPROC_NULL", "MOUNTPROC_MNT", "MOUNTPROC_DUMP", "MOUNTPROC_UMNT",
        "MOUNTPROC_UMNTALL", "MOUNTPROC_EXPORT"]
    assert v1[1].res is mnt.fhstatus
    assert (mnt.MNTPATHLEN, mnt.MNTNAMLEN, mnt.FHSIZE3, mnt.MNT3ERR_SERVERFAULT) == (1024, 255, 64, 10006)


def test_mount_replies_are_byte_exact():
    res = (mnt.MNT3_OK, mnt.mountres3_ok(b"\xaa" * 5, [1]))
    assert mnt.mountres3.encode(res) == h("00000000 00000005 aaaaaaaaaa000000 00000001 00000001")
    assert mnt.mountres3.encode((mnt.MNT3ERR_ACCES, None)) == h("0000000d")
    assert mnt.fhstatus.encode((0, b"\x11" * 32)) == h("00000000") + b"\x11" * 32
    with pytest.raises(XdrBadValue):            # v1 handles are exactly 32 bytes
        mnt.fhstatus.encode((0, b"\x11" * 31))
    with pytest.raises(XdrLimitExceeded):
        mnt.dirpath.encode(b"/" * 1025)


def test_mount_lists():
    exports = [mnt.exportnode(b"/vol", [mnt.groupnode(b"10.0.0.0/8"), mnt.groupnode(b"*")]),
               mnt.exportnode(b"/other", [])]
    data = mnt.exports.encode(exports)
    assert mnt.exports.decode_all(data) == exports
    assert mnt.exports.encode([]) == h("00000000")
    mounts = [mnt.mountbody(b"client%d" % i, b"/vol") for i in range(100)]
    assert mnt.mountlist.decode_all(mnt.mountlist.encode(mounts)) == mounts


# -- NLM v4 and GlusterFS GETSPEC -------------------------------------------------------

def test_nlm4_program_and_types():
    prog = nlm.programs["NLM_PROG"]
    assert prog.number == 100021 and list(prog.versions) == [4]
    procs = prog.versions[4].procs
    assert sorted(procs) == list(range(17)) + [20, 21, 22, 23]
    assert procs[2].name == "NLMPROC4_LOCK" and procs[2].arg is nlm.nlm4_lockargs
    assert procs[23].name == "NLMPROC4_FREE_ALL" and procs[23].arg is nlm.nlm4_notify
    assert (nlm.NLM4_GRANTED, nlm.NLM4_DENIED_GRACE_PERIOD, nlm.NLM4_FAILED) == (0, 4, 9)
    lock = nlm.nlm4_lockargs(b"ck", True, True, nlm.nlm4_lock(
        b"client", b"fh", b"oh", 42, 2 ** 40, 0), False, 3)
    assert nlm.nlm4_lockargs.decode_all(nlm.nlm4_lockargs.encode(lock)) == lock
    test_res = nlm.nlm4_testres(b"ck", (nlm.NLM4_DENIED, nlm.nlm4_holder(
        True, 7, b"oh", 0, 2 ** 64 - 1)))
    assert nlm.nlm4_testres.decode_all(nlm.nlm4_testres.encode(test_res)) == test_res


def test_gluster_getspec_is_byte_exact():
    req = hndsk.gf_getspec_req(0, b"gluster/nfs", b"")
    assert hndsk.gf_getspec_req.encode(req) == h(
        "00000000 0000000b 676c75737465722f6e667300 00000000")
    prog = hndsk.programs["GLUSTER_HNDSK_PROGRAM"]
    assert prog.number == 14398633 and list(prog.versions) == [2]
    assert {n: p.name for n, p in prog.versions[2].procs.items()} == {
        0: "GF_HNDSK_NULL", 2: "GF_HNDSK_GETSPEC"}
    rsp = hndsk.gf_getspec_rsp(5, 0, b"vol\n\n", b"")
    assert prog.versions[2].procs[2].res.decode_all(hndsk.gf_getspec_rsp.encode(rsp)) == rsp
    assert hndsk.gf_getspec_rsp.decode_all(h("ffffffff 00000002 00000000 00000000")).op_ret == -1
