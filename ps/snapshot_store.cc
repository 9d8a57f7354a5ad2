#include "ps/snapshot_store.h"
