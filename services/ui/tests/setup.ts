import { createI18n } from 'vue-i18n'
import { createMemoryHistory, createRouter } from 'vue-router'
import de from '../src/locales/de.json'
import en from '../src/locales/en.json'

export function i18nFor(locale: 'en' | 'de' = 'en') {
  return createI18n({ legacy: false, locale, fallbackLocale: 'en', messages: { en, de } })
}

export function memoryRouter() {
  const blank = { template: '<div />' }
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', component: blank },
      { path: '/login', component: blank },
      { path: '/password', component: blank },
      { path: '/library', component: blank },
      { path: '/media/:id', component: blank },
    ],
  })
}
