#include "launch/npz.h"
