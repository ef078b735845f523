/**
 * @file crdt/export.h
 * Which declarations the shared libraries export.
 *
 * Every library is built with -fvisibility=hidden: only functions whose
 * declaration in an installed header carries CRDT_API (libcrdt),
 * EPOCH_API (libepoch) or CRDTNET_API (libcrdtnet) are visible to
 * programs; the crdt__, epoch__ and crdtnet__ internals are not. A
 * library's build defines CRDT_BUILDING_CRDT, CRDT_BUILDING_EPOCH or
 * CRDT_BUILDING_NET; for everyone else the macros are empty (on ELF an
 * undecorated declaration links to the exported definition).
 *
 * CRDT_MUST_CHECK marks functions whose result decides whether anything
 * happened (a commit, an open, a merge): ignoring it is a bug, and the
 * compiler says so.
 */
#ifndef CRDT_EXPORT_H
#define CRDT_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define CRDT__VISIBLE __attribute__((visibility("default")))
#define CRDT_MUST_CHECK __attribute__((warn_unused_result))
#else
#define CRDT__VISIBLE
#define CRDT_MUST_CHECK
#endif

#ifdef CRDT_BUILDING_CRDT
#define CRDT_API CRDT__VISIBLE
#else
#define CRDT_API
#endif

#ifdef CRDT_BUILDING_EPOCH
#define EPOCH_API CRDT__VISIBLE
#else
#define EPOCH_API
#endif

#ifdef CRDT_BUILDING_NET
#define CRDTNET_API CRDT__VISIBLE
#else
#define CRDTNET_API
#endif

#endif
