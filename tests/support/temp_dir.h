// A fresh directory under the system temp dir, removed with everything in it at scope exit.
#ifndef PHYSIOREG_TESTS_SUPPORT_TEMP_DIR_H_
#define PHYSIOREG_TESTS_SUPPORT_TEMP_DIR_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace physioreg::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "physioreg-test-XXXXXX");
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_TEMP_DIR_H_
