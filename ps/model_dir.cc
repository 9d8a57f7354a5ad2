#include "ps/model_dir.h"
