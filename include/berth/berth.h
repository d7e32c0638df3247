/* SPDX-License-Identifier: Apache-2.0 */
/* berth/berth.h: the umbrella header of libberth: include this one to get the whole API. */
#ifndef BERTH_BERTH_H
#define BERTH_BERTH_H

#include "common.h"
#include "errors.h"
#include "buf.h"
#include "digest.h"
#include "reference.h"
#include "range.h"
#include "mediatype.h"
#include "descriptor.h"
#include "manifest.h"
#include "index.h"
#include "image.h"
#include "layout.h"
#include "api.h"
#include "document.h"
#include "store.h"
#include "config.h"
#include "server.h"
#include "client.h"
#include "db.h"
#include "log.h"

#endif
