// Prints hakmem's size-class table: `bazel run //hakmem/size_class:size_class_report`.
#include "hakmem/size_class/size_class.h"

int main() {
  hakmem::PrintSizeClassTable(1);
  return 0;
}
