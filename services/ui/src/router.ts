import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { session } from './session'

export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/library' },
  { path: '/login', component: () => import('./views/LoginView.vue'), meta: { public: true } },
  { path: '/password', component: () => import('./views/PasswordView.vue'), meta: { pending: true } },
  { path: '/upload', component: () => import('./views/UploadView.vue') },
  { path: '/library', component: () => import('./views/LibraryView.vue') },
  { path: '/jobs', component: () => import('./views/JobsView.vue') },
  { path: '/media/:id', component: () => import('./views/MediaView.vue'), props: true },
  { path: '/search', component: () => import('./views/SearchView.vue') },
  { path: '/people', component: () => import('./views/PeopleView.vue') },
  { path: '/duplicates', component: () => import('./views/DuplicatesView.vue') },
  { path: '/ask', component: () => import('./views/AskView.vue') },
  { path: '/admin', component: () => import('./views/AdminView.vue') },
  { path: '/:rest(.*)*', redirect: '/library' },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  if (!session.signedIn) return { path: '/login', query: { next: to.fullPath } }
  await session.fresh()
  if (!session.signedIn) return { path: '/login', query: { next: to.fullPath } }
  if (session.state.mustChangePassword && !to.meta.pending) return '/password'
  return true
})
